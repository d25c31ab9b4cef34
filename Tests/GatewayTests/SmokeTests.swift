import XCTest
@testable import Gateway
final class SmokeTests: XCTestCase { func testNothing() {} }
