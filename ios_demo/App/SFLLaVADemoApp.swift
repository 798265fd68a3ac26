import SwiftUI

@main
struct SFLLaVADemoApp: App {
    @StateObject private var model = DemoModel()

    var body: some Scene {
        WindowGroup {
            if let request = BenchmarkRequest(arguments: ProcessInfo.processInfo.arguments) {
                BenchmarkView(request: request)
            } else {
                ContentView(model: model)
            }
        }
    }
}
