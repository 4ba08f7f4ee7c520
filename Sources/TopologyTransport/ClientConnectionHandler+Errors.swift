import GRPCWire
import NIOCore
import NIOHTTP2
import NIOSSL
#if canImport(Glibc)
import Glibc
#endif
import TopologyCore

// How a connection words why it failed: socket and TLS errors as gRFC A94 does, the first
// bytes of a port that is not HTTP/2, NIO's protocol errors as what the peer did.

extension ClientConnectionHandler {
    /// Failure reasons worded as gRFC A94 does, for connect attempts and open connections alike.
    static func describe(_ error: Error) -> String {
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNRESET: return "connection reset"
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "connection timed out"
            case ECONNABORTED: return "connection aborted"
            case EPIPE: return "connection reset"
            case ENOENT: return "no such socket"
            case ENETUNREACH, EHOSTUNREACH: return "network unreachable"
            default: return "socket error: \(io.description)"
            }
        }
        if let ssl = error as? NIOSSLError { return "TLS handshake failed: \(tlsReason(ssl))" }
        if let reason = protocolViolation(error) { return reason }
        return "socket error: \(error)"
    }

    /// The part of a BoringSSL error a person can act on (CERTIFICATE_VERIFY_FAILED, …).
    static func tlsReason(_ error: NIOSSLError) -> String {
        let text = "\(error)"
        for key in ["CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "NO_APPLICATION_PROTOCOL", "TLSV1_ALERT", "SSLV3_ALERT", "HANDSHAKE_FAILURE"] {
            if let r = text.range(of: key) {
                let tail = text[r.lowerBound...].prefix { $0.isLetter || $0 == "_" || $0.isNumber }
                return tail.lowercased().replacingOccurrences(of: "_", with: " ")
            }
        }
        return text
    }

    /// What a misbehaving peer did, for the HTTP/2 errors NIO closes a connection with.
    static func protocolViolation(_ error: Error) -> String? {
        switch error {
        case is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock: return "protocol error: the server sent a header block over the 16 KiB limit"
        case is NIOHTTP2Errors.ExcessiveContinuationFrames: return "protocol error: the server sent CONTINUATION frames without end"
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering, is NIOHTTP2Errors.ExcessiveControlFrames:
            return "protocol error: the server floods control frames (PING/SETTINGS) faster than they are answered"
        case is NIOHTTP2Errors.ExcessiveRSTFrames, is NIOHTTP2Errors.ExcessiveStreamErrors, is NIOHTTP2Errors.ExcessiveNumberOfGlitches:
            return "protocol error: the server resets or breaks streams without end"
        case is NIOHTTP2Errors.FlowControlViolation, is NIOHTTP2Errors.InvalidFlowControlWindowSize:
            return "protocol error: the server violated flow control (sent more than the window)"
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames: return "protocol error: the server sends empty DATA frames without end"
        case is any NIOHTTP2Error: return "protocol error: \(type(of: error))"
        default: return nil
        }
    }

    /// Errors NIO raises when the bytes are not HTTP/2 frames (an HTTP/1.1 answer, garbage):
    /// before the server's SETTINGS, any HTTP/2 protocol error means the peer is not an h2 server.
    static func isFramingError(_ error: Error) -> Bool {
        error is any NIOHTTP2Error
    }
}

/// Looks at the first bytes the server sends, before NIO's HTTP/2 parser does: an HTTP/2 server
/// starts with a SETTINGS frame (RFC 9113 §3.4). Anything else — `HTTP/1.1 400 …`, a TLS
/// alert, random bytes — closes the connection with a reason that says what the port is,
/// instead of waiting for a 4.7 MB "frame" or a parser error's file and line. Removes itself
/// once the first frame header checks out.
final class ServerPrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    struct NotHTTP2: Error { var reason: String }
    private var seen: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if seen.count < 9 { seen += buffer.getBytes(at: buffer.readerIndex, length: min(9 - seen.count, buffer.readableBytes)) ?? [] }
        if let reason = Self.verdict(seen) {
            context.fireErrorCaught(NotHTTP2(reason: reason))
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
        if seen.count >= 9 { context.pipeline.syncOperations.removeHandler(self, promise: nil) }
    }

    static func verdict(_ b: [UInt8]) -> String? { ServerPreface.verdict(b) }
}
