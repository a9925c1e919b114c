// pgflow-api: the HTTP API and dashboard. Not built yet: no issue has asked for it so far, and it will
// bring the HTTP server dependency (kept out of the agent and CLI targets).
import Foundation

FileHandle.standardError.write(Data("pgflow-api: the HTTP API is not built yet; use SQL (pgflow.* functions and views) or the pgflow CLI meanwhile\n".utf8))
exit(2)
