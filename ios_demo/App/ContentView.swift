import PhotosUI
import SwiftUI
import UniformTypeIdentifiers

/// A picked video, copied out of the photo library into a temporary file AVFoundation can open.
struct PickedMovie: Transferable {
    let url: URL

    static var transferRepresentation: some TransferRepresentation {
        FileRepresentation(contentType: .movie) { movie in
            SentTransferredFile(movie.url)
        } importing: { received in
            let dest = FileManager.default.temporaryDirectory.appendingPathComponent(received.file.lastPathComponent)
            try? FileManager.default.removeItem(at: dest)
            try FileManager.default.copyItem(at: received.file, to: dest)
            return PickedMovie(url: dest)
        }
    }
}

struct ContentView: View {
    @ObservedObject var model: DemoModel
    @State private var question = "What is happening in this video?"
    @State private var pickerItem: PhotosPickerItem?

    var body: some View {
        NavigationStack {
            Form {
                Section("Model") {
                    if model.bundles.isEmpty {
                        Text("No bundle yet. Export one with sfllava-mobile and copy the whole folder into this app's "
                            + "Documents (Files app, or Finder's file sharing).")
                    } else {
                        Picker("Bundle", selection: Binding(get: { model.selected ?? "" }, set: { model.select($0) })) {
                            ForEach(model.bundles, id: \.self) { Text($0).tag($0) }
                        }
                    }
                    Button("Refresh") { model.refresh() }
                }
                Section("Video") {
                    PhotosPicker(model.video == nil ? "Pick a video" : "New clip", selection: $pickerItem, matching: .videos)
                    if !model.thumbnails.isEmpty {
                        ScrollView(.horizontal) {
                            HStack(spacing: 4) {
                                ForEach(model.thumbnails.indices, id: \.self) { i in
                                    Image(uiImage: model.thumbnails[i]).resizable().scaledToFit().frame(height: 64)
                                }
                            }
                        }
                    }
                }
                Section("Question") {
                    TextField("Ask about the video", text: $question, axis: .vertical)
                    HStack {
                        Button(model.history.isEmpty && model.answer.isEmpty ? "Ask" : "Ask a follow-up") {
                            model.ask(question)
                        }.disabled(model.busy != nil)
                        Spacer()
                        Button("Start over") { model.startOver() }.disabled(model.busy != nil || model.video == nil)
                        Button("Stop", role: .destructive) { model.stop() }.disabled(model.busy != "Answering")
                    }
                    if model.clipReady && model.history.isEmpty && model.answer.isEmpty {
                        Text("The clip is in the model: ask away; follow-ups do not re-read it.").font(.caption)
                    }
                }
                ForEach(model.history) { exchange in
                    Section(exchange.question) {
                        Text(exchange.answer).textSelection(.enabled)
                        if let s = exchange.stats { StatsLine(stats: s) }
                    }
                }
                if let busy = model.busy {
                    Section { ProgressView(busy) }
                }
                if let error = model.error {
                    Section {
                        Text(error).foregroundStyle(.red)
                        if model.contextFull { Button("Start over") { model.startOver() }.disabled(model.busy != nil) }
                    }
                }
                if !model.answer.isEmpty || model.stats != nil {
                    Section("Answer") {
                        Text(model.answer).textSelection(.enabled)
                        if let s = model.stats { StatsLine(stats: s) }
                    }
                }
            }
            .navigationTitle("SF-LLaVA Video QA")
        }
        .onChange(of: pickerItem) { _, item in
            guard let item else { return }
            Task {
                do {
                    if let movie = try await item.loadTransferable(type: PickedMovie.self) {
                        model.pick(video: movie.url)
                    } else {
                        model.error = "The photo library gave no file for this video"
                    }
                } catch {
                    model.error = "This video cannot be loaded: \(error.localizedDescription)"
                }
            }
        }
    }
}

struct StatsLine: View {
    let stats: AnswerStats

    var body: some View {
        let decode = stats.decodeTokensPerSecond.map { String(format: "%.1f", $0) } ?? "-"
        Text(String(format: "%@: first token %.2f s · decode %@ tok/s · %d tokens (%@) · %d positions left",
                    stats.followUp ? "follow-up" : "first question", stats.timeToFirstToken, decode, stats.tokens,
                    stats.stop.rawValue, stats.contextLeft))
            .font(.caption)
            .foregroundStyle(.secondary)
    }
}
