//! `/echo`: no miners. The words of the last message come back one chunk per word, through the
//! same queue and events as a chat, so it proves the whole pipe end to end.

/// The chunks of an echo: each word with the whitespace that follows it.
pub fn chunks(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in message.chars() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            if current.chars().any(|c| !c.is_whitespace()) {
                out.push(std::mem::take(&mut current));
            }
            in_space = false;
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_keep_their_spaces() {
        assert_eq!(super::chunks("a bb  c"), vec!["a ", "bb  ", "c"]);
        assert_eq!(super::chunks(" x"), vec![" x"]);
        assert!(super::chunks("").is_empty());
        assert_eq!(super::chunks("héllo wörld").concat(), "héllo wörld");
    }
}
