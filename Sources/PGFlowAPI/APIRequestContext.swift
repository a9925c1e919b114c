import Foundation
import Hummingbird
import Logging
import PGFlowClient
import PGFlowPostgres

/// The request context of every API route: who the caller is, once a route has authorized it.
public struct APIRequestContext: RequestContext {
    /// Hummingbird's own per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The caller's token and the scope the route needs, checked on the connection that does the
    /// route's work (one pool hop per request); nil for routes without auth.
    var auth: PendingAuth?
    /// Largest body a route collects.
    public var maxBodyBytes = 1 << 20

    /// A context for a new request.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Hummingbird's own upload limit follows ours.
    public var maxUploadSize: Int { maxBodyBytes }
}

/// A bearer token not yet checked, or checked: `APIRoutes.read`/`change` check it inside their own
/// database call; a route that ends without doing so (or with an error) is checked by the router.
final class PendingAuth: @unchecked Sendable {
    let token: String
    let scope: APIScope
    private let lock = NSLock()
    private var checkedName: String?

    init(token: String, scope: APIScope) {
        self.token = token
        self.scope = scope
    }

    /// The token's name once checked.
    var tokenName: String? { lock.withLock { checkedName } }

    /// Checks the token on `c` unless done already: 401 for an unknown or revoked token, 403 for a small scope.
    func check(on c: PostgresConnection) throws {
        if tokenName != nil { return }
        guard let grant = try PGFlowClient.authorizeAPIToken(token, needs: scope.rawValue, on: c) else {
            throw APIProblem(.unauthorized, "unknown or revoked API token")
        }
        guard grant.allowed else { throw APIProblem(.forbidden, "token \(grant.name) has scope \(grant.scope); this needs \(scope.rawValue)") }
        lock.withLock { checkedName = grant.name }
    }
}
