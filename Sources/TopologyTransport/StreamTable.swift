/// In-flight streams by id, without hashing: client stream ids are odd and increase by 2, and
/// at most a few hundred are open at once, so slot `(id >> 1) & mask` holds stream `id` unless
/// more than `capacity` ids separate the oldest and newest open stream — then the table grows.
struct StreamTable {
    private var slots: [RPCCall?] = Array(repeating: nil, count: 256)
    private var mask = 255
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    subscript(id: Int32) -> RPCCall? {
        get {
            guard let c = slots[Int(id >> 1) & mask], c.streamID == id else { return nil }
            return c
        }
        set {
            let i = Int(id >> 1) & mask
            if let newValue {
                if let old = slots[i] {
                    if old.streamID == id { slots[i] = newValue; return }
                    grow()
                    self[id] = newValue
                    return
                }
                slots[i] = newValue
                count += 1
            } else if let old = slots[i], old.streamID == id {
                slots[i] = nil
                count -= 1
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> RPCCall? {
        guard let c = self[id] else { return nil }
        self[id] = nil
        return c
    }

    func forEach(_ body: (RPCCall) -> Void) {
        guard count > 0 else { return }
        for c in slots { if let c { body(c) } }
    }

    /// Removes every stream, returning them in stream-id order.
    mutating func removeAll() -> [RPCCall] {
        var out: [RPCCall] = []
        forEach { out.append($0) }
        slots = Array(repeating: nil, count: slots.count)
        count = 0
        return out.sorted { $0.streamID < $1.streamID }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: nil, count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for c in old { if let c { self[c.streamID] = c } }
    }
}
