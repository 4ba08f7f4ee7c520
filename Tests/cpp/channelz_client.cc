// A gRPC client application on C++ gRPC (Debian's libgrpc++-dev) with channelz, for
// `grpctop attach`'s tests: the second implementation beside scripts/pychannelz.py, same
// interface. One channel to --target with --lb, helloworld.Greeter/SayHello at --rps; the
// channelz service on an admin server (127.0.0.1, a free port), announced as 'admin HOST:PORT'.
// SIGUSR1 stops the traffic (channelz stays up); SIGTERM prints {"sent":N,"ok":N,"failed":N}.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include <grpcpp/ext/channelz_service_plugin.h>
#include <grpcpp/grpcpp.h>

#include "helloworld.grpc.pb.h"

static std::atomic<bool> sending{true};
static std::atomic<bool> done{false};

int main(int argc, char** argv) {
  std::string target, lb = "round_robin";
  double rps = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--target")) target = argv[i + 1];
    else if (!strcmp(argv[i], "--lb")) lb = argv[i + 1];
    else if (!strcmp(argv[i], "--rps")) rps = atof(argv[i + 1]);
  }
  if (target.empty() || rps <= 0) {
    fprintf(stderr, "usage: channelz_client --target T [--lb round_robin|pick_first] [--rps N]\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  signal(SIGUSR1, [](int) { sending = false; });
  signal(SIGTERM, [](int) { done = true; });
  signal(SIGINT, [](int) { done = true; });

  grpc::channelz::experimental::InitChannelzService();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto admin = builder.BuildAndStart();
  if (!admin || port == 0) {
    fprintf(stderr, "channelz_client: cannot start the admin server\n");
    return 1;
  }

  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName(lb);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = helloworld::Greeter::NewStub(channel);
  printf("admin 127.0.0.1:%d\n", port);
  fflush(stdout);

  long sent = 0, ok = 0, failed = 0;
  auto interval = std::chrono::duration<double>(1.0 / rps);
  auto next = std::chrono::steady_clock::now();
  while (!done) {
    if (!sending) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    helloworld::HelloRequest req;
    req.set_name("channelz");
    helloworld::HelloReply reply;
    sent++;
    if (stub->SayHello(&ctx, req, &reply).ok()) ok++; else failed++;
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
    std::this_thread::sleep_until(next);
  }
  printf("{\"sent\": %ld, \"ok\": %ld, \"failed\": %ld}\n", sent, ok, failed);
  fflush(stdout);
  admin->Shutdown();
  return 0;
}
