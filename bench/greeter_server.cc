// Reference server for `grpctop bench`: a C++ gRPC (Debian libgrpc++) Greeter on 127.0.0.1,
// fast enough (tens of thousands of unary RPCs a second on one core) that the client, not the
// server, is what the benchmark measures. Usage: greeter_server PORT (0 = any; prints the port).
#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <grpcpp/grpcpp.h>
#include "helloworld.grpc.pb.h"

// Counts the RPCs its handler answered, and prints the count on SIGTERM ("served N"):
// scripts/bench checks that every RPC the clients counted as OK reached it (h2load counts an
// HTTP 200 as success whatever the grpc-status).
std::atomic<long> served{0};

class GreeterImpl final : public helloworld::Greeter::Service {
  grpc::Status SayHello(grpc::ServerContext*, const helloworld::HelloRequest* req, helloworld::HelloReply* reply) override {
    reply->set_message("Hello " + req->name());
    served.fetch_add(1, std::memory_order_relaxed);
    return grpc::Status::OK;
  }
};

int main(int argc, char** argv) {
  std::string port = argc > 1 ? argv[1] : "0";
  GreeterImpl service;
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort("127.0.0.1:" + port, grpc::InsecureServerCredentials(), &selected);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server(builder.BuildAndStart());
  if (!server) { std::cerr << "cannot listen on 127.0.0.1:" << port << std::endl; return 1; }
  std::cout << "serving cpp-greeter on 127.0.0.1:" << selected << std::endl;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown();
  std::cout << "served " << served.load() << std::endl;
  return 0;
}
