import Foundation

/// Settings read from config.json have every key optional: a missing key keeps the type's default
/// (the one place defaults live) and an unknown one is an error, so that a misspelt override is not
/// silently ignored.
extension Decoder {
    /// The keyed container, once no key in it is outside `Keys`.
    public func settings<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws -> KeyedDecodingContainer<Keys> {
        let known = Set(Keys.allCases.map(\.stringValue))
        let all = try container(keyedBy: AnyKey.self)
        if let unknown = all.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw UnknownSettingsKey(path: (all.codingPath + [unknown]).map(\.stringValue).joined(separator: "."),
                                     known: Keys.allCases.map(\.stringValue))
        }
        return try container(keyedBy: Keys.self)
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent.
    public func value<T: Decodable>(_ key: Key, or fallback: T) throws -> T {
        contains(key) ? try decode(T.self, forKey: key) : fallback
    }

    /// For an optional setting, null is nil (off) and an absent key `fallback`.
    public func value<T: Decodable>(_ key: Key, or fallback: T?) throws -> T? {
        contains(key) ? try decodeIfPresent(T.self, forKey: key) : fallback
    }
}

/// A key no setting has. Threading: a value type.
public struct UnknownSettingsKey: Error, CustomStringConvertible {
    public let path: String
    public let known: [String]
    public var description: String { "unknown key '\(path)' (known here: \(known.joined(separator: ", ")))" }
}

private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
