//! Message templates: what the publisher sends and what a subscriber sends to subscribe, for any
//! WebSocket server, with placeholders filled per message. Ported from the peers kit's `wsload`
//! (same placeholders, same generated payloads, byte for byte), plus `{CHANNEL}`.
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{T}` | the send time, nanoseconds since the Unix epoch (subscribers read it back after `T=`) |
//! | `{SEQ}` | the publisher's message counter, from 0 |
//! | `{CHANNEL}` | the channel of this message or subscriber (`load-0`, `load-1`, ...) |
//! | `{PAD}` | the filler (appended at the end if the template has neither `{PAD}` nor `{PAYLOAD}`) |
//! | `{PAYLOAD}` | the filler as a raw JSON value, for protocols whose data field is JSON |
//!
//! The filler is [`PayloadKind::Pad`] (`x` characters) or a realistic JSON document
//! ([`PayloadKind::Positions`], [`PayloadKind::Metrics`]) of exactly the size asked for. A `{PAD}`
//! inside a JSON string of the template (odd number of unescaped `"` before it) gets its JSON
//! escaped, so the message stays valid JSON. If both `{PAD}` and `{PAYLOAD}` appear, `{PAYLOAD}`
//! gets the fill and `{PAD}` stays empty.

use std::fmt;
use std::str::FromStr;

/// What the filler is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadKind {
    /// `x` characters.
    #[default]
    Pad,
    /// A JSON array of moving entities: `[{"id":"av100","x":12.345,"y":0.5,...},...]`.
    Positions,
    /// A JSON object of gauges: `{"cpu_user_pct":12.345,"mem_rss_mb":8123.5,...}`.
    Metrics,
}

impl FromStr for PayloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pad" => Ok(Self::Pad),
            "positions" => Ok(Self::Positions),
            "metrics" => Ok(Self::Metrics),
            _ => Err(format!(
                "unknown payload kind `{s}` (pad, positions, metrics)"
            )),
        }
    }
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pad => "pad",
            Self::Positions => "positions",
            Self::Metrics => "metrics",
        })
    }
}

/// How big the filler is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Exactly this many filler bytes, whatever the rest of the message is.
    Filler(usize),
    /// As many filler bytes as bring the whole message to this size (none if it is already
    /// longer), so that every server gets messages of the same size.
    Total(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Lit(Vec<u8>),
    T,
    Seq,
    Channel,
    /// `{PAD}`; `esc`: it sits inside a JSON string of the template.
    Pad {
        esc: bool,
    },
    /// `{PAYLOAD}`: the generated JSON value, raw.
    Payload,
}

/// A parsed template with its filler generator.
#[derive(Clone, Debug)]
pub struct Template {
    segs: Vec<Seg>,
    size: Size,
    /// Index in `segs` of the segment that gets the fill (first `{PAYLOAD}`, else first `{PAD}`).
    fill_at: usize,
    kind: PayloadKind,
    rng: u64,
}

fn fmt_u64(mut v: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = 20;
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &out[i..]
}

impl Template {
    /// Parses `text`; `seed` makes the generated payloads reproducible (same seed, same messages).
    pub fn parse(text: &str, size: Size, kind: PayloadKind, seed: u64) -> Template {
        let mut segs = Vec::new();
        let mut lit = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        // Inside a JSON string of the template text: an unescaped '"' toggles, '\\' skips a byte.
        let mut in_str = false;
        while i < b.len() {
            let rest = &b[i..];
            let tok = [
                (&b"{T}"[..], Seg::T),
                (b"{SEQ}", Seg::Seq),
                (b"{CHANNEL}", Seg::Channel),
                (b"{PAD}", Seg::Pad { esc: in_str }),
                (b"{PAYLOAD}", Seg::Payload),
            ]
            .into_iter()
            .find(|(name, _)| rest.starts_with(name));
            match tok {
                Some((name, seg)) => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                    }
                    segs.push(seg);
                    i += name.len();
                }
                None => {
                    match b[i] {
                        b'"' => in_str = !in_str,
                        b'\\' if in_str && i + 1 < b.len() => {
                            lit.push(b[i]);
                            i += 1;
                        }
                        _ => {}
                    }
                    lit.push(b[i]);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        let fill_at = segs
            .iter()
            .position(|s| matches!(s, Seg::Payload))
            .or_else(|| segs.iter().position(|s| matches!(s, Seg::Pad { .. })))
            .unwrap_or_else(|| {
                segs.push(Seg::Pad { esc: false });
                segs.len() - 1
            });
        Template {
            segs,
            size,
            fill_at,
            kind,
            rng: (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D) | 1,
        }
    }

    /// Renders one message into `out` (cleared first): send time `t`, counter `seq`, `channel`.
    pub fn render(&mut self, out: &mut Vec<u8>, t: u64, seq: u64, channel: &str) {
        let mut tb = [0u8; 20];
        let mut sb = [0u8; 20];
        let ts = fmt_u64(t, &mut tb);
        let ss = fmt_u64(seq, &mut sb);
        let fill = match self.size {
            Size::Filler(n) => n,
            Size::Total(n) => {
                let base: usize = self
                    .segs
                    .iter()
                    .map(|s| match s {
                        Seg::Lit(l) => l.len(),
                        Seg::T => ts.len(),
                        Seg::Seq => ss.len(),
                        Seg::Channel => channel.len(),
                        Seg::Pad { .. } | Seg::Payload => 0,
                    })
                    .sum();
                n.saturating_sub(base)
            }
        };
        out.clear();
        for (i, s) in self.segs.iter().enumerate() {
            let n = if i == self.fill_at { fill } else { 0 };
            match s {
                Seg::Lit(l) => out.extend_from_slice(l),
                Seg::T => out.extend_from_slice(ts),
                Seg::Seq => out.extend_from_slice(ss),
                Seg::Channel => out.extend_from_slice(channel.as_bytes()),
                Seg::Pad { esc } => match self.kind {
                    PayloadKind::Pad => out.resize(out.len() + n, b'x'),
                    // a second {PAD} (the fill went elsewhere) stays empty
                    _ if i != self.fill_at => {}
                    k => {
                        payload::fill(out, k, &mut self.rng, n, if *esc { b"\\\"" } else { b"\"" })
                    }
                },
                Seg::Payload => match self.kind {
                    PayloadKind::Pad => {
                        out.push(b'"');
                        out.resize(out.len() + n.saturating_sub(2), b'x');
                        out.push(b'"');
                    }
                    k => payload::fill(out, k, &mut self.rng, n, b"\""),
                },
            }
        }
    }

    /// The template rendered as text (subscribe messages: no time, counter 0).
    pub fn render_string(&mut self, t: u64, seq: u64, channel: &str) -> String {
        let mut out = Vec::new();
        self.render(&mut out, t, seq, channel);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Generated JSON payloads for [`PayloadKind::Positions`] and [`PayloadKind::Metrics`].
mod payload {
    use super::PayloadKind;

    #[inline]
    fn next(x: &mut u64) -> u64 {
        // xorshift64*
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in lo..hi.
    #[inline]
    fn range(x: &mut u64, lo: i64, hi: i64) -> i64 {
        lo + ((next(x) >> 11) % (hi - lo) as u64) as i64
    }

    /// `v / 10^dec` in shortest fixed notation: 12345,3 -> 12.345; 500,3 -> 0.5; -3210,3 -> -3.21.
    pub(super) fn fixed(out: &mut Vec<u8>, v: i64, dec: u32) {
        if v < 0 {
            out.push(b'-');
        }
        let a = v.unsigned_abs();
        let p = 10u64.pow(dec);
        out.extend_from_slice((a / p).to_string().as_bytes());
        let mut frac = a % p;
        if frac != 0 {
            let mut d = dec;
            while frac % 10 == 0 {
                frac /= 10;
                d -= 1;
            }
            out.push(b'.');
            let s = frac.to_string();
            out.resize(out.len() + d as usize - s.len(), b'0');
            out.extend_from_slice(s.as_bytes());
        }
    }

    fn key(out: &mut Vec<u8>, q: &[u8], k: &[u8]) {
        out.extend_from_slice(q);
        out.extend_from_slice(k);
        out.extend_from_slice(q);
        out.push(b':');
    }

    /// Field `f` (0..7) of entity `i`: "id":"av<100+i>", then x, y, z (3 decimals), vx, vy, vz (2).
    fn entity_field(out: &mut Vec<u8>, x: &mut u64, i: usize, f: usize, q: &[u8]) {
        const KEYS: [&[u8]; 7] = [b"id", b"x", b"y", b"z", b"vx", b"vy", b"vz"];
        key(out, q, KEYS[f]);
        match f {
            0 => {
                out.extend_from_slice(q);
                out.extend_from_slice(b"av");
                out.extend_from_slice((100 + i).to_string().as_bytes());
                out.extend_from_slice(q);
            }
            1 | 3 => fixed(out, range(x, -500_000, 500_000), 3),
            2 => fixed(out, range(x, 0, 20_000), 3),
            5 if next(x) & 1 == 0 => out.push(b'0'),
            _ => fixed(out, range(x, -500, 500), 2),
        }
    }

    /// (name, max value in units of 10^-dec, dec); the short ones come last so that they can use
    /// up what the long ones leave.
    const GAUGES: &[(&str, i64, u32)] = &[
        ("cpu_user_pct", 100_000, 3),
        ("cpu_sys_pct", 100_000, 3),
        ("mem_rss_mb", 16_384_000, 3),
        ("heap_used_mb", 4_096_000, 3),
        ("gc_pause_ms", 50_000, 3),
        ("loop_lag_ms", 20_000, 3),
        ("tick_ms", 16_667, 3),
        ("rx_kbps", 10_000_000, 2),
        ("tx_kbps", 10_000_000, 2),
        ("conns", 100_000, 0),
        ("queue_depth", 5_000, 0),
        ("p50_ms", 10_000, 3),
        ("p99_ms", 100_000, 3),
        ("load1", 1_600, 2),
        ("temp_c", 900, 1),
        ("fps", 1_440, 1),
        ("hz", 240, 0),
        ("up", 2, 0),
    ];

    /// Appends a JSON value of `kind` that is exactly `n` bytes long (or its smallest form, `[]` /
    /// `{}`, when `n` is smaller): whole entities / gauges while they fit, then the fields of one
    /// more entity (positions) or the shorter gauges (metrics) that still fit, then spaces (JSON
    /// whitespace; less than one field). `q` is the quote: `"`, or `\"` inside a JSON string.
    pub(super) fn fill(out: &mut Vec<u8>, kind: PayloadKind, x: &mut u64, n: usize, q: &[u8]) {
        let start = out.len();
        let fits = |out: &Vec<u8>, closing: usize| out.len() - start + closing <= n;
        match kind {
            PayloadKind::Pad => out.resize(start + n, b'x'),
            PayloadKind::Positions => {
                out.push(b'[');
                let mut i = 0;
                loop {
                    let mark = out.len();
                    if i > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    for f in 0..7 {
                        if f > 0 {
                            out.push(b',');
                        }
                        entity_field(out, x, i, f, q);
                    }
                    out.push(b'}');
                    if !fits(out, 1) {
                        out.truncate(mark);
                        break;
                    }
                    i += 1;
                }
                // as many fields of one more entity as fit
                let mark = out.len();
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                let mut nf = 0;
                for f in 0..7 {
                    let fm = out.len();
                    if f > 0 {
                        out.push(b',');
                    }
                    entity_field(out, x, i, f, q);
                    if !fits(out, 2) {
                        out.truncate(fm);
                        break;
                    }
                    nf += 1;
                }
                if nf == 0 {
                    out.truncate(mark);
                } else {
                    out.push(b'}');
                }
                out.push(b']');
            }
            PayloadKind::Metrics => {
                out.push(b'{');
                let mut k = 0usize; // gauges written
                let mut round = 0usize; // names get a _<round> suffix after the first round
                let mut full = false;
                while !full {
                    for &(name, max, dec) in GAUGES {
                        let mark = out.len();
                        if k > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(q);
                        out.extend_from_slice(name.as_bytes());
                        if round > 0 {
                            out.push(b'_');
                            out.extend_from_slice(round.to_string().as_bytes());
                        }
                        out.extend_from_slice(q);
                        out.push(b':');
                        fixed(out, range(x, 0, max), dec);
                        if fits(out, 1) {
                            k += 1;
                        } else {
                            // full: only the (shorter) gauges after this one that still fit
                            out.truncate(mark);
                            full = true;
                        }
                    }
                    round += 1;
                }
                out.push(b'}');
            }
        }
        let used = out.len() - start;
        if used < n {
            out.resize(start + n, b' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::for_each_marker;

    fn render(t: &mut Template, time: u64, seq: u64) -> String {
        t.render_string(time, seq, "load-0")
    }

    #[test]
    fn placeholders_are_filled_and_total_size_pads_to_the_target() {
        let mut t = Template::parse(
            "{\"d\":\"T={T} S={SEQ} {PAD}\"}",
            Size::Total(64),
            PayloadKind::Pad,
            1,
        );
        let s = render(&mut t, 123456789, 42);
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("{\"d\":\"T=123456789 S=42 x"), "{s}");
        assert!(s.ends_with("xx\"}"), "{s}");
        // no {PAD}: filler appended; longer than the target: no filler
        let mut t = Template::parse("T={T}", Size::Total(10), PayloadKind::Pad, 1);
        assert_eq!(render(&mut t, 7, 0), "T=7xxxxxxx");
        assert_eq!(render(&mut t, 12345678901, 0), "T=12345678901");
    }

    #[test]
    fn filler_size_is_fixed_and_channel_is_substituted() {
        let mut t = Template::parse(
            r#"{"type":"publish","channel":"{CHANNEL}","data":{"t":"T={T}","pad":"{PAD}"}}"#,
            Size::Filler(5),
            PayloadKind::Pad,
            1,
        );
        assert_eq!(
            t.render_string(99, 3, "load-7"),
            r#"{"type":"publish","channel":"load-7","data":{"t":"T=99","pad":"xxxxx"}}"#
        );
        let mut sub = Template::parse(
            r#"{"type":"subscribe","channels":["{CHANNEL}"]}"#,
            Size::Filler(0),
            PayloadKind::Pad,
            1,
        );
        assert_eq!(
            sub.render_string(0, 0, "bench"),
            r#"{"type":"subscribe","channels":["bench"]}"#
        );
        assert_eq!(
            for_each_marker(t.render_string(1, 0, "c").as_bytes(), |_| {}),
            1
        );
    }

    fn render_n(t: &mut Template, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut out = Vec::new();
                t.render(
                    &mut out,
                    1_000_000_000 + i as u64 * 7_777_777,
                    i as u64,
                    "c",
                );
                out
            })
            .collect()
    }

    #[test]
    fn payload_kinds_are_exact_size_valid_json_and_marker_free() {
        for kind in [PayloadKind::Positions, PayloadKind::Metrics] {
            for target in [
                0usize, 10, 40, 64, 100, 128, 200, 256, 257, 300, 512, 1000, 4096,
            ] {
                // raw JSON after the text part (the raw peers' template)
                let mut t = Template::parse("T={T} SEQ={SEQ} {PAD}", Size::Total(target), kind, 7);
                for m in render_n(&mut t, 20) {
                    let s = String::from_utf8(m.clone()).unwrap();
                    let json_at = s.find(['[', '{']).unwrap();
                    let v: serde_json::Value =
                        serde_json::from_str(&s[json_at..]).unwrap_or_else(|e| panic!("{e}: {s}"));
                    assert!(v.is_array() || v.is_object());
                    assert!(
                        m.len() == target || (m.len() > target && s[json_at..].len() == 2),
                        "{kind} {target}: {} {s}",
                        m.len()
                    );
                    assert_eq!(for_each_marker(&m, |_| {}), 1, "{s}");
                    assert!(s.len() - s.trim_end().len() < 24, "{kind} {target}: {s:?}");
                }
                // {PAD} inside a JSON string: escaped, the message and the string are JSON
                let mut t = Template::parse(
                    "{\"type\":\"publish\",\"data\":\"T={T} {PAD}\"}",
                    Size::Total(target),
                    kind,
                    7,
                );
                for m in render_n(&mut t, 20) {
                    let v: serde_json::Value = serde_json::from_slice(&m)
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&m)));
                    let inner = v["data"].as_str().unwrap();
                    let iv: serde_json::Value =
                        serde_json::from_str(&inner[inner.find(' ').unwrap() + 1..]).unwrap();
                    assert!(iv.is_array() || iv.is_object());
                    assert!(
                        m.len() == target || m.len() < 60,
                        "{kind} {target}: {}",
                        m.len()
                    );
                    assert!(inner.starts_with("T=1"));
                }
                // {PAYLOAD}: raw JSON value
                let mut t = Template::parse(
                    "{\"t\":\"T={T}\",\"seq\":{SEQ},\"data\":{PAYLOAD}}",
                    Size::Total(target),
                    kind,
                    7,
                );
                for m in render_n(&mut t, 20) {
                    let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
                    assert!(v["data"].is_array() || v["data"].is_object());
                    assert!(
                        m.len() == target || m.len() < 60,
                        "{kind} {target}: {}",
                        m.len()
                    );
                }
            }
        }
        // pad + {PAYLOAD} = a JSON string of filler
        let mut t = Template::parse(
            "{\"t\":\"T={T}\",\"data\":{PAYLOAD}}",
            Size::Total(64),
            PayloadKind::Pad,
            1,
        );
        let m = &render_n(&mut t, 1)[0];
        assert_eq!(m.len(), 64);
        let v: serde_json::Value = serde_json::from_slice(m).unwrap();
        assert!(v["data"].as_str().unwrap().bytes().all(|b| b == b'x'));
    }

    #[test]
    fn payload_content_looks_like_the_examples_and_is_seeded() {
        let mut t = Template::parse("{PAYLOAD}", Size::Total(400), PayloadKind::Positions, 1);
        let a = render_n(&mut t, 3);
        let v: serde_json::Value = serde_json::from_slice(&a[0]).unwrap();
        assert_eq!(v[0]["id"], "av100");
        for k in ["x", "y", "z", "vx", "vy", "vz"] {
            assert!(v[0][k].is_number(), "{k}: {}", v[0]);
        }
        assert_eq!(v[1]["id"], "av101");
        assert_ne!(a[0], a[1], "new values every message");
        let mut t2 = Template::parse("{PAYLOAD}", Size::Total(400), PayloadKind::Positions, 1);
        assert_eq!(render_n(&mut t2, 3), a, "same seed, same messages");
        let mut t3 = Template::parse("{PAYLOAD}", Size::Total(400), PayloadKind::Positions, 2);
        assert_ne!(render_n(&mut t3, 1)[0], a[0]);
        let mut t = Template::parse("{PAYLOAD}", Size::Total(300), PayloadKind::Metrics, 1);
        let v: serde_json::Value = serde_json::from_slice(&render_n(&mut t, 1)[0]).unwrap();
        assert!(v["cpu_user_pct"].as_f64().unwrap() < 100.0);
        assert!(v.as_object().unwrap().len() > 10);
        let mut t = Template::parse("{PAYLOAD}", Size::Total(3000), PayloadKind::Metrics, 1);
        let v: serde_json::Value = serde_json::from_slice(&render_n(&mut t, 1)[0]).unwrap();
        assert!(
            v["cpu_user_pct_2"].is_number(),
            "later rounds get suffixed names"
        );
        let mut o = Vec::new();
        for (v, d) in [
            (12345i64, 3u32),
            (500, 3),
            (0, 3),
            (-3210, 3),
            (-5, 2),
            (100, 2),
            (7, 0),
            (-1, 3),
        ] {
            payload::fixed(&mut o, v, d);
            o.push(b' ');
        }
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "12.345 0.5 0 -3.21 -0.05 1 7 -0.001 "
        );
    }

    #[test]
    fn payload_kinds_parse_and_print() {
        for k in ["pad", "positions", "metrics"] {
            assert_eq!(k.parse::<PayloadKind>().unwrap().to_string(), k);
        }
        assert!("json".parse::<PayloadKind>().is_err());
    }
}
