public enum PGFlowClientPlaceholder {}
