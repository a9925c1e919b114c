import Hummingbird
import Logging

/// The request context of every API route: who the caller is, once a route has authorized it.
public struct APIRequestContext: RequestContext {
    /// Hummingbird's own per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The name of the token that authorized the request (nil before authorization, or without auth).
    public var tokenName: String?
    /// Largest body a route collects.
    public var maxBodyBytes = 1 << 20

    /// A context for a new request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Hummingbird's own upload limit follows ours.
    public var maxUploadSize: Int { maxBodyBytes }
}
