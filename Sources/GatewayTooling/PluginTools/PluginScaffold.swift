import Foundation
import GatewayCore

/// `gateway plugin new c|swift NAME`: a plugin project that builds, and passes `gateway plugin test`, as it
/// is written. The plugin copies the client certificate's subject into a request header and answers 403 on a
/// configured path prefix: the two things an authorization or identity plugin starts from.
package struct PluginScaffold {
    package enum Language: String, CaseIterable, Sendable {
        case c, swift
    }

    package let language: Language
    package let name: String
    /// The SDK folder (with include/gateway_plugin.h and Package.swift) the project builds against.
    package let sdk: String

    /// The SDK of the checkout this gateway was built from, when it is still there.
    package static var defaultSDK: String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let sdk = root.appendingPathComponent("sdk").path
        return FileManager.default.fileExists(atPath: "\(sdk)/include/gateway_plugin.h") ? sdk : nil
    }

    package init(language: Language, name: String, sdk: String) throws {
        guard let first = name.utf8.first, (97...122).contains(first), name.utf8.count <= 64,
            name.utf8.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 95 })
        else {
            throw GatewayError(.invalidArgument, "plugin name '\(name)': use 1 to 64 of [a-z0-9_], starting with a letter (it names the C symbols and the library)")
        }
        guard !sdk.contains(where: { $0 == "\"" || $0 == "\\" || $0 == " " || $0 == "$" }) else {
            throw GatewayError(.invalidArgument, "--sdk \(sdk): a path with quotes, backslashes, spaces or $ cannot go into a Makefile and Package.swift as is; use a path without them (a symlink)")
        }
        guard FileManager.default.fileExists(atPath: "\(sdk)/include/gateway_plugin.h") else {
            throw GatewayError(.invalidArgument, "--sdk \(sdk): no include/gateway_plugin.h there; pass the sdk folder of a gateway checkout")
        }
        self.language = language
        self.name = name
        self.sdk = sdk
    }

    /// The files to write, by path relative to the project directory.
    package var files: [(path: String, contents: String)] {
        switch language {
        case .c: return [("\(name).c", cSource), ("Makefile", makefile), ("README.md", readme)]
        case .swift: return [("Package.swift", packageManifest), ("Sources/\(typeName)/\(typeName).swift", swiftSource), ("README.md", readme)]
        }
    }

    /// Writes the project into `directory`, which must not exist yet or be empty.
    package func write(to directory: String) throws {
        let manager = FileManager.default
        if let existing = try? manager.contentsOfDirectory(atPath: directory), !existing.isEmpty {
            throw GatewayError(.invalidArgument, "\(directory): exists and is not empty")
        }
        for file in files {
            let path = "\(directory)/\(file.path)"
            try manager.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try file.contents.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    /// The library the build produces, relative to the project directory.
    package var library: String {
        language == .c ? "lib\(name).so" : ".build/release/lib\(typeName).so"
    }

    /// `my_authz` -> `MyAuthzPlugin`: the suffix keeps every valid name clear of Swift's and the SDK's own
    /// names (`string`, `decision`, `self`, `gateway_plugin_kit`, ...).
    private var typeName: String {
        name.split(separator: "_").map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined() + "Plugin"
    }

    private var headerName: String { "x-\(name.replacingOccurrences(of: "_", with: "-"))-subject" }

    private var readme: String {
        let build = language == .c ? "make" : "swift build -c release"
        return """
            # \(name)

            A gateway plugin made by `gateway plugin new \(language.rawValue) \(name)`. It copies the client
            certificate's subject into `\(headerName)` and answers 403 for paths under `deny_prefix` (config).

            ```sh
            \(build)
            gateway plugin test \(library) --request "GET /hello" --request "GET /admin/x" \\
              --config <(echo '{ deny_prefix: /admin/ }')
            ```

            Enable it on a listener:

            ```yaml
            plugins:
              - { library: /path/to/\(library.split(separator: "/").last!), config: { deny_prefix: /admin/ } }
            ```

            The ABI: \(sdk)/include/gateway_plugin.h; the guide: docs/plugins.md of the gateway.

            """
    }

    private var makefile: String {
        """
        # Builds lib\(name).so against the gateway's plugin SDK. Override SDK= for another checkout.
        SDK ?= \(sdk)
        CFLAGS ?= -std=c99 -O2 -Wall -Wextra -Werror -pedantic

        lib\(name).so: \(name).c $(SDK)/include/gateway_plugin.h $(SDK)/include/gateway_plugin_helpers.h
        \t$(CC) -shared -fPIC -fvisibility=hidden $(CFLAGS) -I$(SDK)/include \(name).c -o lib\(name).so

        clean:
        \trm -f lib\(name).so

        .PHONY: clean

        """
    }

    private var cSource: String {
        """
        /*
         * \(name): copies the client certificate's subject into the request header \(headerName) (replacing any
         * copy the client sent) and answers 403 for paths under the config's "deny_prefix", if set.
         * Config: { "deny_prefix": "/admin/" } (optional). Built by `make`; see README.md.
         */
        #include <stdlib.h>
        #include "gateway_plugin_helpers.h" /* gateway_plugin.h, gw_config_string, GW_STR_LIT, stdio, string */

        static const gw_host_api *host;

        typedef struct {
            char deny_prefix[256];
        } \(name)_instance;

        static gw_status \(name)_create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
            /* The config reader: typed values by key path, and the gateway's own wording for a bad config. */
            static const char *const known[] = {"deny_prefix"};
            gw_str prefix = {"", 0};
            host = h;
            if (!GW_HOST_HAS(h, config_check_keys)) { snprintf(error, cap, "this gateway has no config reader: upgrade it"); return GW_ERR_INVALID_ARGUMENT; }
            if (h->config_check_keys(args->instance_tag, GW_STR_LIT(""), known, 1, error, cap) != GW_OK) return GW_ERR_INVALID_ARGUMENT;
            if (gw_config_string(h, args->instance_tag, "deny_prefix", &prefix, error, cap) < 0) return GW_ERR_INVALID_ARGUMENT;
            \(name)_instance *self = calloc(1, sizeof *self);
            if (!self) { snprintf(error, cap, "out of memory"); return GW_ERR_INTERNAL; }
            if (prefix.len >= sizeof self->deny_prefix || memchr(prefix.ptr, 0, prefix.len)) {
                free(self);
                snprintf(error, cap, "deny_prefix: expected a string of at most %d bytes", (int)sizeof self->deny_prefix - 1);
                return GW_ERR_INVALID_ARGUMENT;
            }
            memcpy(self->deny_prefix, prefix.ptr, prefix.len); /* the view is valid only until create returns */
            *instance = self;
            return GW_OK;
        }

        static void \(name)_destroy(void *instance) { free(instance); }

        /* Event-loop thread: never blocks. */
        static gw_action \(name)_on_request_headers(void *instance, gw_handle request) {
            const \(name)_instance *self = instance;
            gw_str path;
            size_t prefix = strlen(self->deny_prefix);
            if (prefix > 0 && host->get_attribute(request, GW_ATTR_PATH, 0, &path) == GW_OK &&
                path.len >= prefix && memcmp(path.ptr, self->deny_prefix, prefix) == 0) {
                static const char body[] = "forbidden\\n";
                gw_header type = {{"content-type", 12}, {"text/plain", 10}};
                return host->respond(request, 403, &type, 1, (gw_str){body, sizeof body - 1}) == GW_OK ? GW_STOP : GW_FAILED;
            }
            gw_str subject;
            static const char header[] = "\(headerName)";
            gw_str name = {header, sizeof header - 1};
            if (host->get_attribute(request, GW_ATTR_CLIENT_SUBJECT, 0, &subject) != GW_OK) {
                /* No client certificate: make sure no client-sent copy reaches the backend. */
                return host->remove_header(request, name) == GW_OK ? GW_CONTINUE : GW_FAILED;
            }
            return host->set_header(request, name, subject) == GW_OK ? GW_CONTINUE : GW_FAILED;
        }

        static const gw_plugin_descriptor descriptor = {
            .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
            .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR, .flags = 0,
            .name = "\(name)", .version = "0.1.0",
            .create = \(name)_create, .destroy = \(name)_destroy,
            .on_request_headers = \(name)_on_request_headers,
        };

        GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
            host = h;
            return &descriptor;
        }

        """
    }

    private var packageManifest: String {
        """
        // swift-tools-version:6.0
        // A gateway plugin made by `gateway plugin new swift \(name)`. GATEWAY_SDK overrides the SDK's path.
        import Foundation
        import PackageDescription

        let sdk = ProcessInfo.processInfo.environment["GATEWAY_SDK"] ?? "\(sdk)"

        let package = Package(
            name: "\(name)",
            products: [
                // A dynamic library: the gateway dlopens lib\(typeName).so.
                .library(name: "\(typeName)", type: .dynamic, targets: ["\(typeName)"]),
            ],
            dependencies: [
                .package(name: "gateway-plugin-sdk", path: sdk),
            ],
            targets: [
                .target(
                    name: "\(typeName)",
                    dependencies: [.product(name: "GatewayPluginKit", package: "gateway-plugin-sdk")],
                    swiftSettings: [.swiftLanguageMode(.v6)]
                ),
            ]
        )

        """
    }

    private var swiftSource: String {
        """
        import GatewayPluginKit

        /// Copies the client certificate's subject into `\(headerName)` (replacing any copy the client sent) and
        /// answers 403 for paths under `deny_prefix`. Runs on the gateway's event loops: read-only after init.
        final class \(typeName): GatewayRequestPlugin {
            struct Settings: Decodable {
                var denyPrefix: String?
                enum CodingKeys: String, CodingKey { case denyPrefix = "deny_prefix" }
            }

            let denyPrefix: String?

            init(config: PluginConfig) throws {
                denyPrefix = try config.decode(Settings.self).denyPrefix  // strict: unknown keys are errors
            }

            func onRequest(_ request: GatewayRequest) -> Decision {
                if let denyPrefix, let path = request.string(GW_ATTR_PATH), path.hasPrefix(denyPrefix) {
                    return .respond(status: 403, headers: [.init("content-type", "text/plain")], body: "forbidden\\n")
                }
                if let subject = request.string(GW_ATTR_CLIENT_SUBJECT) {
                    request.setHeader("\(headerName)", subject)
                } else {
                    request.removeHeader("\(headerName)")  // no certificate: drop any client-sent copy
                }
                return .proceed
            }
        }

        @_cdecl("gw_plugin_entry_v1")
        public func gw_plugin_entry_v1(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
            GatewayPluginExport.entry(host, \(typeName).self, name: "\(name)", version: "0.1.0")
        }

        """
    }
}
