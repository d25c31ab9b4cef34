import SwiftASN1
import X509

/// RFC 5280 4.2.1.10 name constraints, enforced whether the extension is critical or not: every CA's
/// permitted and excluded subtrees apply to every certificate below it in the chain. Supported forms: DNS
/// names, URIs (by host: `corp.example` that host, `.corp.example` the hosts below it, so
/// `spiffe://trust.domain/...` is constrained by its trust domain), email addresses (mailbox, host or
/// `.domain`), IP ranges (address and mask) and directory names (RDN prefix, compared exactly: a
/// PrintableString and a UTF8String of the same text differ). A wildcard DNS name is refused when it could stand
/// for an excluded host. Self-issued intermediates' own names are exempt (RFC 5280 6.1.3 (b)). Not applied: the
/// subject's emailAddress attribute against email constraints. A constraint of another form (otherName, x400,
/// ediParty, registeredID) refuses a certificate
/// that has a name of that form. Ported in spirit from swift-certificates' NameConstraintsPolicy, which is
/// not public (and refuses every directoryName or email constraint).
package enum NameConstraintsCheck {
    /// The most name-against-subtree comparisons one chain may need (Go's x509 stops at 250,000): the work is
    /// names times subtrees, so a leaf with thousands of names under a CA with thousands of subtrees would hold an
    /// event loop for seconds (x509-limbo's nc-dos-2: 2.7 s here before this bound). Past it, the chain is refused.
    package static let maxComparisons = 65_536

    /// The first violation in `chain` (leaf first, anchors last), or nil.
    package static func violation(in chain: [Certificate]) -> String? {
        var comparisons = 0
        for (position, ca) in chain.enumerated() where position > 0 {
            let constraints: NameConstraints
            do {
                guard let found = try ca.extensions.nameConstraints else { continue }
                constraints = found
            } catch {
                return "issuer certificate '\(ca.subject)' has a malformed nameConstraints extension: \(error)"
            }
            for (below, certificate) in chain[..<position].enumerated() {
                // RFC 5280 6.1.3 (b): a self-issued intermediate's own names are not checked (key rollover).
                if below > 0, certificate.subject == certificate.issuer { continue }
                let names: [GeneralName]
                do {
                    names = try Self.names(of: certificate)
                } catch {
                    return "certificate '\(certificate.subject)' has a malformed subjectAltName: \(error)"
                }
                comparisons += names.count * (constraints.permittedSubtrees.count + constraints.excludedSubtrees.count)
                if comparisons > maxComparisons {
                    return "checking the name constraints of '\(ca.subject)' would take more than \(maxComparisons) comparisons; refused"
                }
                for name in names {
                    if let reason = check(name, permitted: constraints.permittedSubtrees, excluded: constraints.excludedSubtrees) {
                        return "\(reason) in '\(certificate.subject)', by the name constraints of '\(ca.subject)'"
                    }
                }
            }
        }
        return nil
    }

    /// The subject (when not empty) and every subject alternative name.
    private static func names(of certificate: Certificate) throws -> [GeneralName] {
        var names: [GeneralName] = certificate.subject.isEmpty ? [] : [.directoryName(certificate.subject)]
        if let alternatives = try certificate.extensions.subjectAlternativeNames { names.append(contentsOf: alternatives) }
        return names
    }

    /// Why `name` violates the subtrees, or nil.
    package static func check(_ name: GeneralName, permitted: [GeneralName], excluded: [GeneralName]) -> String? {
        for subtree in excluded {
            switch matches(name, subtree, excluding: true) {
            case true?: return "\(describe(name)) is excluded"
            case nil: return "\(describe(name)) meets an unsupported name constraint"
            case false?: continue
            }
        }
        var constrained = false
        for subtree in permitted {
            switch matches(name, subtree, excluding: false) {
            case true?: return nil
            case nil: return "\(describe(name)) meets an unsupported name constraint"
            case false?: if sameForm(name, subtree) { constrained = true }
            }
        }
        return constrained ? "\(describe(name)) is outside the permitted subtrees" : nil
    }

    /// true or false for a constraint of the name's form; false for another supported form; nil when the
    /// constraint's form is unsupported and the name has that form.
    /// A URI without a host name to compare (no authority, userinfo, an IP literal) matches every excluded
    /// subtree and no permitted one: it cannot be shown to be inside.
    private static func matches(_ name: GeneralName, _ subtree: GeneralName, excluding: Bool) -> Bool? {
        switch (subtree, name) {
        case (.dnsName(let constraint), .dnsName(let value)):
            let value = value.hasSuffix(".") ? String(value.dropLast()) : value
            let constraint = constraint.hasSuffix(".") ? String(constraint.dropLast()) : constraint
            // A name with an empty label (`.example.com`, `a..b`) cannot be placed: excluded, never permitted.
            if value.isEmpty || value.hasPrefix(".") || value.contains("..") { return excluding }
            return domain(value, within: constraint) || (excluding && wildcard(value, mayMatch: constraint))
        case (.uniformResourceIdentifier(let constraint), .uniformResourceIdentifier(let value)):
            guard let host = host(ofURI: value) else { return excluding }
            // RFC 5280: a URI constraint names one host, or with a leading dot the hosts below a domain.
            return constraint.hasPrefix(".") ? domain(host, within: constraint) : host.lowercased() == constraint.lowercased()
        case (.rfc822Name(let constraint), .rfc822Name(let value)):
            return email(value, within: constraint, excluding: excluding)
        case (.ipAddress(let constraint), .ipAddress(let value)):
            return address(Array(value.bytes), within: Array(constraint.bytes))
        case (.directoryName(let constraint), .directoryName(let value)):
            let prefix = Array(constraint)
            let rdns = Array(value)
            return rdns.count >= prefix.count && Array(rdns.prefix(prefix.count)) == prefix
        case (.dnsName, _), (.uniformResourceIdentifier, _), (.rfc822Name, _), (.ipAddress, _), (.directoryName, _):
            return false
        default:
            return sameForm(name, subtree) ? nil : false
        }
    }

    private static func sameForm(_ a: GeneralName, _ b: GeneralName) -> Bool {
        switch (a, b) {
        case (.otherName, .otherName), (.rfc822Name, .rfc822Name), (.dnsName, .dnsName), (.x400Address, .x400Address),
             (.directoryName, .directoryName), (.ediPartyName, .ediPartyName), (.uniformResourceIdentifier, .uniformResourceIdentifier),
             (.ipAddress, .ipAddress), (.registeredID, .registeredID):
            return true
        default:
            return false
        }
    }

    /// `name` equals `constraint` or is below it ("a.example.com" within "example.com"); a constraint with a
    /// leading dot ("`.example.com`") admits only names below it. ASCII case is ignored; an empty constraint
    /// admits every name.
    package static func domain(_ name: String, within constraint: String) -> Bool {
        let name = name.lowercased(), constraint = constraint.lowercased()
        if constraint.isEmpty { return true }
        if constraint.hasPrefix(".") { return name.hasSuffix(constraint) && name.count > constraint.count }
        return name == constraint || name.hasSuffix("." + constraint)
    }

    /// Whether a wildcard name ("`*.example.com`") can stand for a host of an excluded subtree that the name
    /// itself is not within: one label more than its base ("`bar.example.com`"). A peer could be matched to the
    /// excluded host through the wildcard (x509-limbo's cve-2025-61727, as Go's fix for it).
    package static func wildcard(_ name: String, mayMatch constraint: String) -> Bool {
        guard name.hasPrefix("*.") else { return false }
        let base = name.dropFirst(2).lowercased(), constraint = constraint.lowercased()
        guard !constraint.hasPrefix("."), constraint.hasSuffix("." + base) else { return false }
        let label = constraint.dropLast(base.count + 1)
        return !label.isEmpty && !label.contains(".")
    }

    /// A mailbox ("user@host": that one), a host ("host": every mailbox there) or a domain (".host": every
    /// mailbox below it).
    private static func email(_ address: String, within constraint: String, excluding: Bool) -> Bool {
        // A mailbox with no `@` or more than one (x509-limbo's `invalid@address@example.com`) cannot be placed.
        guard let at = address.lastIndex(of: "@"), address.firstIndex(of: "@") == at else { return excluding }
        if let constraintAt = constraint.lastIndex(of: "@") {
            // The local part exactly, the host ignoring case.
            return address[..<at] == constraint[..<constraintAt]
                && address[address.index(after: at)...].lowercased() == constraint[constraint.index(after: constraintAt)...].lowercased()
        }
        let host = String(address[address.index(after: at)...])
        if constraint.hasPrefix(".") { return domain(host, within: constraint) }
        return host.lowercased() == constraint.lowercased()
    }

    /// The host name of "scheme://host[:port]/..."; nil without an authority, with userinfo, or for an IP
    /// literal (which a host-name constraint cannot place).
    private static func host(ofURI uri: String) -> String? {
        guard let schemeEnd = uri.range(of: "://") else { return nil }
        var authority = uri[schemeEnd.upperBound...]
        if let end = authority.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { authority = authority[..<end] }
        if authority.contains("@") || authority.hasPrefix("[") { return nil }
        if let colon = authority.lastIndex(of: ":") { authority = authority[..<colon] }
        if authority.hasSuffix(".") { authority = authority.dropLast() }
        guard !authority.isEmpty, !authority.allSatisfy({ $0.isNumber || $0 == "." }) else { return nil }
        return String(authority)
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address within a constraint of address and mask (8 or 32 bytes).
    private static func address(_ address: [UInt8], within constraint: [UInt8]) -> Bool {
        guard constraint.count == address.count * 2 else { return false }
        for index in address.indices where address[index] & constraint[address.count + index] != constraint[index] & constraint[address.count + index] {
            return false
        }
        return true
    }

    private static func describe(_ name: GeneralName) -> String {
        switch name {
        case .dnsName(let value): return "DNS name '\(value)'"
        case .uniformResourceIdentifier(let value): return "URI '\(value)'"
        case .rfc822Name(let value): return "email '\(value)'"
        case .directoryName(let value): return "name '\(value)'"
        case .ipAddress(let value): return "IP address \(Array(value.bytes))"
        default: return "\(name)"
        }
    }
}
