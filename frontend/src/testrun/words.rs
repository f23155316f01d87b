//! Shell-style words: splitting a list-file line into words, and quoting a command so a user
//! can paste it back into a shell.

/// Splits `line` into words as a POSIX shell does for plain words: blanks separate, '…' keeps
/// everything literal, "…" keeps everything but `\"` and `\\`, and `\` outside quotes escapes
/// the next character. No expansion of any kind.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                words.extend(word.take());
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a ' quote is not closed".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a \" quote is not closed".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a \" quote is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("the line ends in a lone \\".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// One word quoted for a POSIX shell (left bare when that is safe).
pub fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line quoted for a shell.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split(r#"  a.elf -append 'console=ttyS0 x' "b \"c\"" d\ e  "#).unwrap(),
            ["a.elf", "-append", "console=ttyS0 x", "b \"c\"", "d e"]
        );
        assert_eq!(split("x '' y").unwrap(), ["x", "", "y"]);
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        assert!(split("a 'b").unwrap_err().contains("'"));
        assert!(split("a \"b").unwrap_err().contains('"'));
        assert!(split("a \\").is_err());
    }

    #[test]
    fn quoting_round_trips() {
        let words = ["ferrite", "-append", "a b", "it's", "", "-m", "64M"];
        let line = join(&words);
        assert_eq!(line, r#"ferrite -append 'a b' 'it'\''s' '' -m 64M"#);
        assert_eq!(split(&line).unwrap(), words);
    }
}
