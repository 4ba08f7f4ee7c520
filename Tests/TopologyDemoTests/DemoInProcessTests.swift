import Foundation
import NIOPosix
import Testing
import TopologyCore
@testable import TopologyDemo

/// The demo as a module: a scenario played in this process (its fleet of real servers on
/// loopback, its controller, our engine), without the CLI.
@Suite(.serialized) struct DemoInProcessTests {
    @Test func headlessScenarioEndsWithAPassingVerdict() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer {
            try? group.syncShutdownGracefully()
            try? serverGroup.syncShutdownGracefully()
        }
        let story = try #require(DemoScenario.named("headless"))
        let run = try DemoRun(story: story, pods: 3, speed: 2, seed: 7, group: group, serverGroup: serverGroup)
        let end = Date().addingTimeInterval(120)
        while !run.controller.finished && Date() < end { Thread.sleep(forTimeInterval: 0.5) }
        let verdict = try #require(run.controller.verdict, "no verdict within 120 s")
        let model = run.stop(grace: .seconds(1))
        #expect(verdict.passed, "\(verdict.text)")
        #expect(verdict.scenario == "headless")
        // round_robin over the three pods of a headless Service (each served RPCs), then the
        // switch to pick_first the story makes, with the subchannels it shut down.
        let served = model.backends.values.filter { $0.traffic.total.completed > 0 }
        #expect(served.count == 3, "\(model.backends.keys.sorted())")
        #expect(model.policy == .pickFirst)
        #expect(model.log.entries.contains { $0.text == "LB policy round_robin → pick_first" })
        #expect(model.liveSubchannelCount == 1)
    }
}
