/// Splits a command line into words the way a POSIX shell would for a simple command: whitespace
/// separates, single quotes keep everything, double quotes keep everything but `\"` and `\\`, a
/// backslash outside quotes escapes the next character. No expansion, pipes or redirection: a
/// deployment that needs them says `sh -c '…'`.
enum CommandWords {
    /// The words, or an error naming the problem.
    static func split(_ line: String) throws(CommandWordsError) -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escaped = false
                continue
            }
            switch (quote, ch) {
            case ("'", "'"), ("\"", "\""): quote = nil
            case ("'", _): current.append(ch)
            case ("\"", "\\"): escaped = true
            case ("\"", _): current.append(ch)
            case (nil, "\\"): escaped = true; inWord = true
            case (nil, "'"), (nil, "\""): quote = ch; inWord = true
            case (nil, _) where ch.isWhitespace:
                if inWord { words.append(current); current = ""; inWord = false }
            default: current.append(ch); inWord = true
            }
        }
        if quote != nil { throw CommandWordsError(message: "unterminated \(quote!) quote in command \(line.debugDescription)") }
        if escaped { throw CommandWordsError(message: "command \(line.debugDescription) ends with a lone backslash") }
        if inWord { words.append(current) }
        if words.isEmpty { throw CommandWordsError(message: "empty command") }
        return words
    }
}

/// A command line that cannot be split.
struct CommandWordsError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
