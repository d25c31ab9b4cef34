import Foundation

#if FUZZING
/// libFuzzer's entry point (`scripts/fuzz TARGET`, built with -sanitize=fuzzer -D FUZZING): the target comes
/// from GATEWAY_FUZZ_TARGET, read once.
private let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["GATEWAY_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        fatalError("set GATEWAY_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return target
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectedTarget.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's driver, for executables that bring their own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's `main` to `<module>_main`: here it hands over to libFuzzer's driver
/// (so libFuzzer's own `main` is not needed).
@_cdecl("GatewayFuzz_main")
public func gatewayFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#else
/// Without libFuzzer: `gateway-fuzz replay [--random N] [--seed S] DIR` runs every target over the files of
/// `DIR/<target>/` (the committed seed corpus and crashes found) and over N random mutations of them, in
/// process. scripts/test runs it, so a parser that regresses on a known input fails CI.
@main
struct FuzzMain {
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard arguments.first == "replay" else {
            print("usage: gateway-fuzz replay [--random N] [--seed S] [--target T] CORPUS_DIR\ntargets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))")
            exit(2)
        }
        arguments.removeFirst()
        var random = 0, seed: UInt64 = 1
        var only: FuzzTarget?
        var directory = "Fuzz/corpus"
        while let argument = arguments.first {
            arguments.removeFirst()
            switch argument {
            case "--random": random = Int(arguments.removeFirst()) ?? 0
            case "--seed": seed = UInt64(arguments.removeFirst()) ?? 1
            case "--target": only = FuzzTarget(rawValue: arguments.removeFirst())
            default: directory = argument
            }
        }
        var generator = SplitMix64(seed: seed)
        for target in FuzzTarget.allCases where only == nil || only == target {
            let folder = URL(fileURLWithPath: directory).appendingPathComponent(target.rawValue)
            let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
            let seeds = files.compactMap { try? [UInt8](Data(contentsOf: folder.appendingPathComponent($0))) }
            for input in seeds { target.run(input) }
            for _ in 0..<random {
                var input = seeds.isEmpty ? [] : seeds[Int(generator.next() % UInt64(seeds.count))]
                mutate(&input, &generator)
                target.run(input)
            }
            print("\(target.rawValue): \(seeds.count) corpus inputs, \(random) random mutations: ok")
        }
    }

    /// A few byte flips, insertions, deletions and duplicated spans, as libFuzzer's simplest mutators do.
    static func mutate(_ input: inout [UInt8], _ generator: inout SplitMix64) {
        for _ in 0..<(1 + Int(generator.next() % 4)) {
            let position = input.isEmpty ? 0 : Int(generator.next() % UInt64(input.count))
            switch generator.next() % 4 {
            case 0 where !input.isEmpty: input[position] = UInt8(truncatingIfNeeded: generator.next())
            case 1: input.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
            case 2 where !input.isEmpty: input.remove(at: position)
            default:
                guard !input.isEmpty else { continue }
                let length = min(input.count - position, 1 + Int(generator.next() % 16))
                input.insert(contentsOf: input[position..<(position + length)], at: position)
            }
        }
    }
}

/// A small seeded generator, so that a replay is the same on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
#endif
