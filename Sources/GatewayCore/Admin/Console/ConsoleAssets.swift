/// The operator's console: a page, a style sheet and a script served by the admin listener at `/`, answered from
/// memory. The page loads nothing from elsewhere, and its Content-Security-Policy forbids it to: scripts, styles,
/// images and requests from this listener only, no inline code, no framing, no form posts.
package enum ConsoleAssets {
    package static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    private static let page = response("text/html; charset=utf-8", ConsolePage.html)
    private static let assets: [String: AdminEndpoints.Response] = [
        "/": page, "/index.html": page,
        "/console.css": response("text/css; charset=utf-8", ConsolePage.css),
        "/console.js": response("text/javascript; charset=utf-8", ConsoleScript.text),
        "/favicon.svg": response("image/svg+xml", ConsolePage.favicon),
    ]

    /// The asset at `path`, or nil.
    package static func asset(for path: String) -> AdminEndpoints.Response? { assets[path] }

    private static func response(_ type: String, _ text: String) -> AdminEndpoints.Response {
        AdminEndpoints.Response(status: .ok, contentType: type, body: Array(text.utf8), headers: [("content-security-policy", contentSecurityPolicy)])
    }
}
