//! A batch of syslog messages, laid out in one buffer exactly as the sink
//! puts it on the wire.
//!
//! Formatters write each message straight into its final, framed place:
//! [`Messages::commit`] adds the frame (RFC 6587 §3.4) around the message
//! just written. The stream sink then hands [`Messages::framed`] to the
//! socket as it is, on the first write and on every replay after a
//! reconnect: each message is copied once, by the formatter, instead of once
//! more into a connection buffer per write (that second copy was 13–16% of
//! the CPU at full speed).
//!
//! Framings (RFC 6587 §3.4; RFC 5425 §4.3 for TLS):
//!
//! - Octet counting (§3.4.1, the only framing RFC 5425 allows):
//!   `MSG-LEN SP SYSLOG-MSG`, `MSG-LEN` the decimal count of the message's
//!   *bytes*, without leading zeros. Any byte may appear in the message.
//!   The length is known only once the message is written, so room for
//!   it is reserved before the message: as many digits as the most common
//!   width so far. A wrong guess moves that one message (still in the CPU
//!   cache) by the difference; messages of 100–999 bytes cost nothing.
//! - Non-transparent (§3.4.2): `SYSLOG-MSG LF`. A CR, LF or NUL inside a
//!   message would split it; the formatter has already escaped them
//!   (`format::Constraints`), so nothing here looks inside messages.
//! - Unframed: messages back to back, for transports that keep each message
//!   apart themselves (UDP datagrams).
//!
//! Whatever the framing, [`Messages::iter`] yields the bare messages.

use super::Framing;

/// Reserved for the `MSG-LEN SP` of the message being written before its
/// length is known; every byte is overwritten at commit.
const PLACEHOLDER: [u8; 21] = [b'0'; 21];

/// Widest `MSG-LEN`: `usize::MAX` has 20 decimal digits.
const MAX_DIGITS: usize = 20;

/// A batch of complete syslog messages, framed back to back in one buffer
/// so formatting allocates nothing per message and the stream sink writes
/// the buffer as it is.
///
/// Write a message by appending to [`Messages::buffer`], then
/// [`Messages::commit`] it or [`Messages::rollback`] a partial write. Only
/// append to the buffer: bytes before the message being written belong to
/// earlier messages and their frames.
#[derive(Debug, Clone)]
pub struct Messages {
    /// Committed frames, then the message being written (with its reserved
    /// `MSG-LEN SP` room under octet counting).
    buf: Vec<u8>,
    /// Where each committed message (without its frame) lies in `buf`.
    spans: Vec<(usize, usize)>,
    framing: Option<Framing>,
    /// End of the last committed frame.
    committed: usize,
    /// Where the message being written starts, once [`Messages::buffer`]
    /// reserved its room.
    open: Option<usize>,
    /// Sum of the message lengths, without frames.
    raw: usize,
    /// Octet counting: digits to reserve for the next `MSG-LEN`.
    guess: usize,
    /// Octet counting: how often each `MSG-LEN` width occurred in this
    /// batch; the most common one becomes the guess.
    widths: [u32; MAX_DIGITS + 1],
}

impl Default for Messages {
    fn default() -> Self {
        Self::with_framing(None)
    }
}

impl Messages {
    /// An empty, unframed batch: messages back to back (UDP, tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch framed with `framing` (`None`: unframed), as a sink
    /// wants it ([`super::Sink::batch_framing`]).
    pub fn with_framing(framing: Option<Framing>) -> Self {
        Self {
            buf: Vec::new(),
            spans: Vec::new(),
            framing,
            committed: 0,
            open: None,
            raw: 0,
            // Most syslog messages are 100–999 bytes long.
            guess: 3,
            widths: [0; MAX_DIGITS + 1],
        }
    }

    /// An empty batch framed with `framing`, with room for about `bytes`
    /// of framed messages and `messages` of them: a batch expected to be
    /// like the last one is written without growing its buffer by
    /// reallocation (each step copies everything written so far).
    pub fn with_capacity(framing: Option<Framing>, bytes: usize, messages: usize) -> Self {
        let mut m = Self::with_framing(framing);
        m.buf.reserve(bytes);
        m.spans.reserve(messages);
        m
    }

    /// How messages are framed in [`Messages::framed`]; `None`: unframed.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Forget every message but keep the memory and the framing.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
        self.committed = 0;
        self.open = None;
        self.raw = 0;
        // The guess carries over: the next batch is likely alike.
        self.widths = [0; MAX_DIGITS + 1];
    }

    /// Start the next message if none is being written; its first byte's
    /// offset in `buf`.
    fn begin(&mut self) -> usize {
        if let Some(start) = self.open {
            return start;
        }
        if self.framing == Some(Framing::OctetCounting) {
            self.buf.extend_from_slice(&PLACEHOLDER[..=self.guess]);
        }
        let start = self.buf.len();
        self.open = Some(start);
        start
    }

    /// The buffer to append the next message to; call [`Messages::commit`]
    /// after writing it, or [`Messages::rollback`] to discard a partial write.
    /// Only append: what the buffer already holds is not the caller's.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        self.begin();
        &mut self.buf
    }

    /// End the message written since the previous commit and frame it.
    pub fn commit(&mut self) {
        let mut start = self.begin();
        // A caller that cut into the reserved room wrote an empty message;
        // the room is rewritten below anyway.
        if self.buf.len() < start {
            self.buf.resize(start, 0);
        }
        let mut end = self.buf.len();
        let len = end - start;
        match self.framing {
            None => {}
            Some(Framing::Lf) => self.buf.push(b'\n'),
            Some(Framing::OctetCounting) => {
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(len).as_bytes();
                let at = self.committed;
                let want = at + digits.len() + 1;
                if want != start {
                    // The width was guessed wrong: move this one message.
                    if want > start {
                        self.buf.resize(end + (want - start), 0);
                    }
                    self.buf.copy_within(start..end, want);
                    self.buf.truncate(want + len);
                    (start, end) = (want, want + len);
                }
                self.buf[at..at + digits.len()].copy_from_slice(digits);
                self.buf[at + digits.len()] = b' ';
                let w = digits.len();
                self.widths[w] = self.widths[w].saturating_add(1);
                if self.widths[w] > self.widths[self.guess] {
                    self.guess = w;
                }
            }
        }
        self.spans.push((start, end));
        self.committed = self.buf.len();
        self.raw += len;
        self.open = None;
    }

    /// Drop whatever was written since the previous commit.
    pub fn rollback(&mut self) {
        self.buf.truncate(self.committed);
        self.open = None;
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there is no message.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Total bytes of all messages (without framing).
    pub fn byte_len(&self) -> usize {
        self.raw
    }

    /// The messages in order, without their frames.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans.iter().map(|&(start, end)| &self.buf[start..end])
    }

    /// Every committed message with its frame, back to back: the bytes for
    /// the wire under [`Messages::framing`] (unframed: the messages with
    /// nothing between them).
    pub fn framed(&self) -> &[u8] {
        &self.buf[..self.committed]
    }

    /// Append every message of `other`, framed as this batch is (one copy
    /// of each message). A message being written here is dropped.
    pub fn extend_from(&mut self, other: &Messages) {
        self.rollback();
        let overhead = match self.framing {
            None => 0,
            Some(Framing::Lf) => 1,
            // Room for a 4-digit length and its space.
            Some(Framing::OctetCounting) => 5,
        };
        self.buf.reserve(other.raw + overhead * other.len());
        self.spans.reserve(other.len());
        for msg in other.iter() {
            self.buffer().extend_from_slice(msg);
            self.commit();
        }
    }

    /// Lay the batch out again for `framing` (`None`: unframed), if it is
    /// not already: one copy of every message, for a batch built for
    /// another sink. A message being written is dropped.
    pub fn reframe(&mut self, framing: Option<Framing>) {
        self.rollback();
        if self.framing != framing {
            let mut out = Self::with_framing(framing);
            out.extend_from(self);
            *self = out;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testutil::frame_model;
    use super::*;

    fn model(msgs: &[Vec<u8>], framing: Option<Framing>) -> Vec<u8> {
        frame_model(msgs.iter().map(Vec::as_slice), framing)
    }

    fn build(items: &[&[u8]], framing: Option<Framing>) -> Messages {
        let mut m = Messages::with_framing(framing);
        for item in items {
            m.buffer().extend_from_slice(item);
            m.commit();
        }
        m
    }

    fn bare(m: &Messages) -> Vec<Vec<u8>> {
        m.iter().map(<[u8]>::to_vec).collect()
    }

    const OCTET: Option<Framing> = Some(Framing::OctetCounting);

    #[test]
    fn octet_counting_prefixes_byte_length_and_space() {
        let m = build(&[b"<14>1 a", b"xy"], OCTET);
        assert_eq!(m.framed(), b"7 <14>1 a2 xy");
        assert_eq!(bare(&m), [b"<14>1 a".to_vec(), b"xy".to_vec()]);
    }

    #[test]
    fn octet_counting_counts_bytes_not_characters() {
        // "é" is two bytes, the BOM three: MSG-LEN counts octets.
        let msg = "\u{feff}é".as_bytes();
        let m = build(&[msg], OCTET);
        assert_eq!(&m.framed()[..2], b"5 ");
        assert_eq!(&m.framed()[2..], msg);
    }

    #[test]
    fn octet_counting_keeps_embedded_newlines() {
        assert_eq!(build(&[b"a\nb"], OCTET).framed(), b"3 a\nb");
    }

    #[test]
    fn octet_counting_empty_message_is_zero_without_padding() {
        let m = build(&[b""], OCTET);
        assert_eq!(m.framed(), b"0 ");
        assert_eq!(bare(&m), [Vec::<u8>::new()]);
    }

    #[test]
    fn commit_without_buffer_is_an_empty_message() {
        let mut m = Messages::with_framing(OCTET);
        m.commit();
        m.buffer().extend_from_slice(b"x");
        m.commit();
        assert_eq!(m.framed(), b"0 1 x");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn octet_counting_lengths_at_digit_boundaries() {
        for len in [9, 10, 99, 100, 999, 1000, 9999, 10_000] {
            let msg = vec![b'm'; len];
            let m = build(&[&msg], OCTET);
            let expected = format!("{len} ");
            assert_eq!(&m.framed()[..expected.len()], expected.as_bytes(), "{len}");
            assert_eq!(&m.framed()[expected.len()..], &msg[..], "{len}");
            assert_eq!(m.byte_len(), len);
        }
    }

    #[test]
    fn octet_counting_guess_too_narrow_moves_the_message_right() {
        // Three 3-digit lengths make 3 the guess; then 1000 and 10000 bytes.
        let (a, b, c) = (vec![b'a'; 100], vec![b'b'; 1000], vec![b'c'; 10_000]);
        let items: [&[u8]; 5] = [&a, &a, &a, &b, &c];
        let m = build(&items, OCTET);
        let owned: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(m.framed(), model(&owned, OCTET));
        assert_eq!(bare(&m), owned);
    }

    #[test]
    fn octet_counting_guess_too_wide_moves_the_message_left() {
        // Four-digit lengths make 4 the guess; then 999, 9 and 0 bytes.
        let (a, b, c) = (vec![b'a'; 1000], vec![b'b'; 999], vec![b'c'; 9]);
        let items: [&[u8]; 6] = [&a, &a, &a, &b, &c, b""];
        let m = build(&items, OCTET);
        let owned: Vec<Vec<u8>> = items.iter().map(|i| i.to_vec()).collect();
        assert_eq!(m.framed(), model(&owned, OCTET));
        assert_eq!(bare(&m), owned);
    }

    #[test]
    fn octet_counting_guess_follows_the_most_common_width() {
        let mut m = Messages::with_framing(OCTET);
        for len in [1000, 1000, 50, 1000] {
            let b = m.buffer();
            b.resize(b.len() + len, b'x');
            m.commit();
        }
        assert_eq!(m.guess, 4, "one 2-digit length among 4-digit ones");
        m.clear();
        assert_eq!(m.guess, 4, "the guess carries over to the next batch");
    }

    #[test]
    fn rollback_after_a_partial_write_leaves_earlier_frames() {
        for framing in [None, OCTET, Some(Framing::Lf)] {
            let mut m = build(&[b"one"], framing);
            m.buffer().extend_from_slice(&[b'p'; 1500]);
            m.rollback();
            m.buffer().extend_from_slice(b"two");
            m.commit();
            let expected = model(&[b"one".to_vec(), b"two".to_vec()], framing);
            assert_eq!(m.framed(), expected, "{framing:?}");
            assert_eq!(m.len(), 2);
            assert_eq!(m.byte_len(), 6);
        }
    }

    #[test]
    fn uncommitted_bytes_are_not_framed() {
        let mut m = build(&[b"one"], OCTET);
        m.buffer().extend_from_slice(b"half");
        assert_eq!(m.framed(), b"3 one");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn lf_framing_appends_one_lf() {
        let m = build(&[b"m1", b"m2", b""], Some(Framing::Lf));
        assert_eq!(m.framed(), b"m1\nm2\n\n");
        assert_eq!(bare(&m), [b"m1".to_vec(), b"m2".to_vec(), Vec::new()]);
        assert_eq!(m.byte_len(), 4);
    }

    #[test]
    fn unframed_iter_yields_each_message() {
        let m = build(&[b"a", b"", b"bc"], None);
        assert_eq!(m.framed(), b"abc");
        assert_eq!(bare(&m), [b"a".to_vec(), Vec::new(), b"bc".to_vec()]);
        assert_eq!((m.len(), m.byte_len()), (3, 3));
    }

    #[test]
    fn a_batch_built_with_room_frames_like_any_other() {
        let items: [&[u8]; 3] = [b"<14>1 a", b"", b"<14>1 ccc"];
        let mut roomy = Messages::with_capacity(Some(Framing::OctetCounting), 4096, 16);
        assert!(roomy.buf.capacity() >= 4096 && roomy.spans.capacity() >= 16);
        for item in items {
            roomy.buffer().extend_from_slice(item);
            roomy.commit();
        }
        let plain = build(&items, Some(Framing::OctetCounting));
        assert_eq!(roomy.framed(), plain.framed());
        assert_eq!(roomy.len(), 3);
    }

    #[test]
    fn clear_keeps_the_framing() {
        let mut m = build(&[b"stale"], Some(Framing::Lf));
        m.clear();
        assert!(m.is_empty());
        m.buffer().extend_from_slice(b"x");
        m.commit();
        assert_eq!(m.framed(), b"x\n");
        assert_eq!(m.framing(), Some(Framing::Lf));
    }

    #[test]
    fn reframe_changes_the_layout_not_the_messages() {
        let mut m = build(&[b"a", b"bc"], None);
        m.buffer().extend_from_slice(b"partial");
        m.reframe(OCTET);
        assert_eq!(m.framed(), b"1 a2 bc");
        m.reframe(Some(Framing::Lf));
        assert_eq!(m.framed(), b"a\nbc\n");
        assert_eq!(m.framing(), Some(Framing::Lf));
        assert_eq!(bare(&m), [b"a".to_vec(), b"bc".to_vec()]);
    }

    fn any_framing() -> impl Strategy<Value = Option<Framing>> {
        prop_oneof![
            Just(None),
            Just(Some(Framing::OctetCounting)),
            Just(Some(Framing::Lf)),
        ]
    }

    /// A message's length: around the digit boundaries more often than not.
    fn any_message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 90..110),
            proptest::collection::vec(any::<u8>(), 990..1010),
            (0usize..3000).prop_map(|n| vec![b'x'; n]),
        ]
    }

    proptest! {
        #[test]
        fn framed_bytes_match_the_model(
            msgs in proptest::collection::vec((any_message(), any::<bool>()), 0..40),
            framing in any_framing(),
        ) {
            // Each message may come after a rolled-back partial write, and
            // is written in two appends, like a formatter does.
            let mut m = Messages::with_framing(framing);
            for (msg, partial_first) in &msgs {
                if *partial_first {
                    m.buffer().extend_from_slice(msg);
                    m.rollback();
                }
                let half = msg.len() / 2;
                m.buffer().extend_from_slice(&msg[..half]);
                m.buffer().extend_from_slice(&msg[half..]);
                m.commit();
            }
            let msgs: Vec<Vec<u8>> = msgs.into_iter().map(|(msg, _)| msg).collect();
            prop_assert_eq!(m.framed(), &model(&msgs, framing)[..]);
            prop_assert_eq!(bare(&m), msgs.clone());
            prop_assert_eq!(m.byte_len(), msgs.iter().map(Vec::len).sum::<usize>());
            let mut again = m.clone();
            again.reframe(Some(Framing::OctetCounting));
            prop_assert_eq!(again.framed(), &model(&msgs, OCTET)[..]);
        }
    }
}
