import NIOCore
import NIOHPACK
import NIOHTTP2

/// gRPC's length-prefixed messages on NIO buffers (PROTOCOL-HTTP2.md: a 1-byte compressed flag,
/// a 4-byte big-endian length, the message).
public enum GRPCFrame {
    /// Appends one uncompressed message.
    public static func write(_ message: [UInt8], to buf: inout ByteBuffer) {
        buf.writeInteger(UInt8(0))
        buf.writeInteger(UInt32(truncatingIfNeeded: message.count))
        buf.writeBytes(message)
    }

    public static func buffer(_ message: [UInt8], allocator: ByteBufferAllocator) -> ByteBuffer {
        var buf = allocator.buffer(capacity: message.count + 5)
        write(message, to: &buf)
        return buf
    }
}

extension GRPCMessageReader {
    /// The messages a DATA frame's bytes complete.
    public mutating func read(_ buf: ByteBuffer) throws -> [[UInt8]] { try read(buf.readableBytesView) }
}

/// The headers and trailers of a response that gRPC reads, found in one pass (HPACK names arrive
/// lower-case), and the status they mean.
public struct GRPCResponseHeaders: Sendable {
    public var status: String?
    public var grpcStatus: String?
    public var grpcMessage: String?
    /// The value of `identityHeader`, when asked for (`--identity-header`).
    public var identity: String?

    public init(_ headers: HPACKHeaders, identityHeader: String? = nil) {
        for (name, value, _) in headers {
            switch name {
            case ":status": status = value
            case "grpc-status": grpcStatus = value
            case "grpc-message": grpcMessage = value
            default: if name == identityHeader, identity == nil { identity = value }
            }
        }
    }

    /// The RPC's status from its trailers (or a trailers-only response). `sawHeaders`: the
    /// response headers came before, so a `:status` here is not the response's.
    public func outcome(sawHeaders: Bool) -> (code: Int, message: String?) {
        if !sawHeaders, let status, status != "200" {
            return (Self.statusFromHTTP(status), "HTTP status \(status)")
        }
        guard let code = GRPCStatusText.code(grpcStatus) else { return (2, "response without grpc-status") }
        return (code, grpcMessage.map(GRPCStatusText.message))
    }

    /// gRPC's mapping of HTTP status to grpc-status when the server is not speaking gRPC.
    public static func statusFromHTTP(_ status: String) -> Int {
        switch status {
        case "400": 13
        case "401": 16
        case "403": 7
        case "404": 12
        case "429", "502", "503", "504": 14
        default: 2
        }
    }
}

/// HTTP/2 error codes as gRPC reads them.
public enum HTTP2ErrorText {
    /// gRPC's mapping of RST_STREAM codes to statuses; nil for REFUSED_STREAM, which a client
    /// retries transparently (the server never saw the RPC).
    public static func status(rst code: HTTP2ErrorCode) -> (code: Int, message: String)? {
        switch code {
        case .refusedStream: nil
        case .cancel: (1, "stream cancelled by the server")
        case .enhanceYourCalm: (8, "RST_STREAM ENHANCE_YOUR_CALM")
        case .inadequateSecurity: (7, "RST_STREAM INADEQUATE_SECURITY")
        default: (13, "RST_STREAM \(name(code))")
        }
    }

    public static func name(_ code: HTTP2ErrorCode) -> String {
        switch code {
        case .noError: "NO_ERROR"
        case .protocolError: "PROTOCOL_ERROR"
        case .internalError: "INTERNAL_ERROR"
        case .flowControlError: "FLOW_CONTROL_ERROR"
        case .settingsTimeout: "SETTINGS_TIMEOUT"
        case .streamClosed: "STREAM_CLOSED"
        case .frameSizeError: "FRAME_SIZE_ERROR"
        case .refusedStream: "REFUSED_STREAM"
        case .cancel: "CANCEL"
        case .compressionError: "COMPRESSION_ERROR"
        case .connectError: "CONNECT_ERROR"
        case .enhanceYourCalm: "ENHANCE_YOUR_CALM"
        case .inadequateSecurity: "INADEQUATE_SECURITY"
        case .http11Required: "HTTP_1_1_REQUIRED"
        default: "0x\(String(code.networkCode, radix: 16))"
        }
    }
}
