import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix

/// Plain-http GETs of CRLs and POSTs of OCSP requests, through AsyncHTTPClient: no redirects, no proxy, no
/// decompression, the body read up to a limit, and the whole exchange (connect, head and body) within a deadline.
/// Runs on NIO's singleton event loops, never on the gateway's own.
package enum RevocationHTTP {
    private static let client: HTTPClient = {
        var pool = HTTPClient.Configuration.ConnectionPool()
        // A refused connection fails the fetch at once (and is reported as such), instead of being retried with
        // a backoff until the deadline.
        pool.retryConnectionEstablishment = false
        pool.idleTimeout = .seconds(30)
        // Many clients' first handshakes after a restart ask one responder at once: their queries should not
        // wait behind AsyncHTTPClient's default of 8 connections per host (the wait counts against fetch_timeout).
        pool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        let configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(30), read: .seconds(30)), connectionPool: pool, decompression: .disabled
        )
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    package static func get(_ url: String, timeout: TimeAmount, maxBytes: Int) async -> Result<[UInt8], RevocationFailure> {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/pkix-crl, */*")
        return await exchange(request, url: url, timeout: timeout, maxBytes: maxBytes)
    }

    package static func post(_ url: String, body: [UInt8], contentType: String, timeout: TimeAmount, maxBytes: Int) async -> Result<[UInt8], RevocationFailure> {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: contentType)
        request.body = .bytes(ByteBuffer(bytes: body))
        return await exchange(request, url: url, timeout: timeout, maxBytes: maxBytes)
    }

    private static func exchange(_ request: HTTPClientRequest, url: String, timeout: TimeAmount, maxBytes: Int) async -> Result<[UInt8], RevocationFailure> {
        await withTaskGroup(of: Result<[UInt8], RevocationFailure>?.self) { group in
            group.addTask {
                do {
                    let response = try await client.execute(request, timeout: timeout)
                    guard response.status == .ok else {
                        return .failure(.init(RevocationFailure.httpStatus, "\(url) answered \(response.status.code) \(response.status.reasonPhrase)"))
                    }
                    if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > maxBytes {
                        return .failure(.init(RevocationFailure.tooLarge, "\(url) sent \(length) bytes; at most \(maxBytes) are read"))
                    }
                    var body = try await response.body.collect(upTo: maxBytes)
                    return .success(body.readBytes(length: body.readableBytes) ?? [])
                } catch is NIOTooManyBytesError {
                    return .failure(.init(RevocationFailure.tooLarge, "\(url) sent more than \(maxBytes) bytes"))
                } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
                    return .failure(.init(RevocationFailure.timeout, "\(url) did not answer within \(timeout.nanoseconds / 1_000_000) ms"))
                } catch is CancellationError {
                    return nil
                } catch {
                    return .failure(.init(RevocationFailure.connect, "\(url): \(error)"))
                }
            }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(timeout.nanoseconds, 0)))
                return Task.isCancelled ? nil : .failure(.init(RevocationFailure.timeout, "\(url) did not answer within \(timeout.nanoseconds / 1_000_000) ms"))
            }
            var outcome: Result<[UInt8], RevocationFailure>?
            while outcome == nil, let next = await group.next() {
                outcome = next
            }
            group.cancelAll()
            return outcome ?? .failure(.init(RevocationFailure.timeout, "\(url): cancelled"))
        }
    }
}
