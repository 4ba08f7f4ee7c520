import NIOCore
import NIOPosix
import NIOHTTP2
import NIOSSL
import ArgumentParser
print("hi")
