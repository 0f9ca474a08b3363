//! The three progress renderers on one scripted build: the terminal view as a terminal
//! would show it, and BuildKit's plain and rawjson formats, line for line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bud::progress::{Clock, Event, PlainRenderer, RawJsonRenderer, Renderer, Stream, TtyRenderer};

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
}

const LAYER: &str = "sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c8c44de311d1";

/// A build of three steps: a context load, a base image pull, a cached COPY and a RUN that
/// prints eight lines and fails. Returned in two parts: up to the RUN's output, and the rest.
fn script() -> (Vec<Event>, Vec<Event>) {
    let v = |s: &str| s.to_string();
    let mut first = vec![
        Event::Started {
            vertex: v("v1"),
            name: v("[internal] load build definition from Dockerfile"),
            at: at(0),
        },
        Event::Status {
            vertex: v("v1"),
            id: v("transferring dockerfile"),
            current: 120,
            total: None,
            done: true,
            at: at(10),
        },
        Event::Completed {
            vertex: v("v1"),
            at: at(20),
            error: None,
        },
        Event::Started {
            vertex: v("v2"),
            name: v("[1/3] FROM docker.io/library/alpine:3.20"),
            at: at(30),
        },
        Event::Status {
            vertex: v("v2"),
            id: LAYER.to_string(),
            current: 1_600_000,
            total: Some(3_200_000),
            done: false,
            at: at(130),
        },
        Event::Status {
            vertex: v("v2"),
            id: LAYER.to_string(),
            current: 3_200_000,
            total: Some(3_200_000),
            done: true,
            at: at(230),
        },
        Event::Completed {
            vertex: v("v2"),
            at: at(250),
            error: None,
        },
        Event::Cached {
            vertex: v("v3"),
            name: v("[2/3] COPY app.sh /app.sh"),
            at: at(300),
        },
        Event::Started {
            vertex: v("v4"),
            name: v("[3/3] RUN ./app.sh"),
            at: at(400),
        },
    ];
    for i in 1..=8 {
        first.push(Event::Log {
            vertex: v("v4"),
            stream: if i % 2 == 0 {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            data: format!("line {i}\n").into_bytes(),
            at: at(500 + i * 10),
        });
    }
    let rest = vec![
        Event::Warning {
            vertex: None,
            message: v("FROM --platform flag should not use a constant value"),
            info: None,
        },
        Event::Completed {
            vertex: v("v4"),
            at: at(1400),
            error: Some(v(
                "process \"/bin/sh -c ./app.sh\" did not complete successfully: exit code: 1",
            )),
        },
    ];
    (first, rest)
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a terminal shows after receiving `bytes`: enough of a VT100 for the view's
/// output (text, CR, LF with the tty's newline translation, cursor up, erase below).
fn screen(bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
                if rows.len() <= row {
                    rows.push(Vec::new());
                }
            }
            '\x1b' => {
                assert_eq!(chars.next(), Some('['), "only CSI sequences are expected");
                let mut arg = String::new();
                let cmd = loop {
                    let c = chars.next().expect("unterminated escape sequence");
                    if c.is_ascii_digit() {
                        arg.push(c);
                    } else {
                        break c;
                    }
                };
                let n: usize = arg.parse().unwrap_or(1);
                match cmd {
                    'A' => row = row.saturating_sub(n),
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    // Colours change nothing on the screen.
                    'm' => {}
                    other => panic!("unexpected escape sequence {other}"),
                }
            }
            c => {
                assert!(!c.is_control(), "control character {c:?} on screen");
                let line = &mut rows[row];
                if line.len() <= col {
                    line.resize(col, ' ');
                    line.push(c);
                } else {
                    line[col] = c;
                }
                col += 1;
            }
        }
    }
    let lines: Vec<String> = rows
        .iter()
        .map(|r| r.iter().collect::<String>().trim_end().to_string())
        .collect();
    lines.join("\n").trim_end().to_string() + "\n"
}

#[test]
fn terminal_view_mid_build_and_at_the_end() {
    let (first, rest) = script();
    let out = SharedBuf::default();
    let mut r = TtyRenderer::new(out.clone(), 72, 40, Clock::Events);
    for e in &first {
        r.event(e);
    }
    let mid = screen(&out.0.lock().unwrap());
    assert_eq!(
        mid,
        "\
[+] Building 0.6s (3/4)
 => [internal] load build definition from Dockerfile                0.0s
 => => transferring dockerfile 120B                                 0.0s
 => [1/3] FROM docker.io/library/alpine:3.20                        0.2s
 => => sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c 0.1s
 => CACHED [2/3] COPY app.sh /app.sh                                0.0s
 => [3/3] RUN ./app.sh                                              0.2s
 => => # line 3
 => => # line 4
 => => # line 5
 => => # line 6
 => => # line 7
 => => # line 8
"
    );
    for e in &rest {
        r.event(e);
    }
    r.finish(false);
    let end = screen(&out.0.lock().unwrap());
    assert_eq!(
        end,
        "\
[+] Building 1.4s (4/4) ERROR
 => [internal] load build definition from Dockerfile                0.0s
 => => transferring dockerfile 120B                                 0.0s
 => [1/3] FROM docker.io/library/alpine:3.20                        0.2s
 => => sha256:4bcff63911fcb4448bd4fdacec207030997caf25e9bea4045fa6c 0.1s
 => CACHED [2/3] COPY app.sh /app.sh                                0.0s
 => ERROR [3/3] RUN ./app.sh                                        1.0s
------
 > [3/3] RUN ./app.sh:
line 1
line 2
line 3
line 4
line 5
line 6
line 7
line 8
------

 1 warning found (use --debug to expand):
 - FROM --platform flag should not use a constant value
"
    );
}

#[test]
fn terminal_view_keeps_running_steps_on_a_short_terminal() {
    let (first, _) = script();
    let out = SharedBuf::default();
    let mut r = TtyRenderer::new(out.clone(), 72, 6, Clock::Events);
    for e in &first {
        r.event(e);
    }
    // Five rows fit above the cursor: finished steps give way to the running one.
    assert_eq!(
        screen(&out.0.lock().unwrap()),
        "\
[+] Building 0.6s (3/4)
 => [3/3] RUN ./app.sh                                              0.2s
 => => # line 3
 => => # line 4
 => => # line 5
 => => # line 6
 => => # line 7
 => => # line 8
"
    );
}

fn render(r: &mut dyn Renderer) {
    let (first, rest) = script();
    for e in first.iter().chain(&rest) {
        r.event(e);
    }
    r.finish(false);
}

#[test]
fn plain_output() {
    let out = SharedBuf::default();
    render(&mut PlainRenderer::new(out.clone()));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text,
        format!(
            "\
#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile done
#1 DONE 0.0s

#2 [1/3] FROM docker.io/library/alpine:3.20
#2 {LAYER} 1.60MB / 3.20MB
#2 {LAYER} 3.20MB / 3.20MB done
#2 DONE 0.2s

#3 [2/3] COPY app.sh /app.sh
#3 CACHED

#4 [3/3] RUN ./app.sh
#4 0.110 line 1
#4 0.120 line 2
#4 0.130 line 3
#4 0.140 line 4
#4 0.150 line 5
#4 0.160 line 6
#4 0.170 line 7
#4 0.180 line 8
WARNING: FROM --platform flag should not use a constant value
#4 ERROR: process \"/bin/sh -c ./app.sh\" did not complete successfully: exit code: 1
------
 > [3/3] RUN ./app.sh:
0.110 line 1
0.120 line 2
0.130 line 3
0.140 line 4
0.150 line 5
0.160 line 6
0.170 line 7
0.180 line 8
------
"
        )
    );
}

#[test]
fn rawjson_output() {
    let out = SharedBuf::default();
    render(&mut RawJsonRenderer::new(out.clone()));
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    // Keys are sorted (serde_json's map); times come from the script, so the stream is
    // byte for byte reproducible.
    assert_eq!(text, RAWJSON_GOLDEN.replace("{LAYER}", LAYER));
}

const RAWJSON_GOLDEN: &str = r#"{"vertexes":[{"digest":"v1","name":"[internal] load build definition from Dockerfile","started":"2023-11-14T22:13:20.000000000Z"}]}
{"statuses":[{"completed":"2023-11-14T22:13:20.010000000Z","current":120,"id":"transferring dockerfile","timestamp":"2023-11-14T22:13:20.010000000Z","vertex":"v1"}]}
{"vertexes":[{"completed":"2023-11-14T22:13:20.020000000Z","digest":"v1","name":"[internal] load build definition from Dockerfile","started":"2023-11-14T22:13:20.000000000Z"}]}
{"vertexes":[{"digest":"v2","name":"[1/3] FROM docker.io/library/alpine:3.20","started":"2023-11-14T22:13:20.030000000Z"}]}
{"statuses":[{"current":1600000,"id":"{LAYER}","timestamp":"2023-11-14T22:13:20.130000000Z","total":3200000,"vertex":"v2"}]}
{"statuses":[{"completed":"2023-11-14T22:13:20.230000000Z","current":3200000,"id":"{LAYER}","timestamp":"2023-11-14T22:13:20.230000000Z","total":3200000,"vertex":"v2"}]}
{"vertexes":[{"completed":"2023-11-14T22:13:20.250000000Z","digest":"v2","name":"[1/3] FROM docker.io/library/alpine:3.20","started":"2023-11-14T22:13:20.030000000Z"}]}
{"vertexes":[{"cached":true,"completed":"2023-11-14T22:13:20.300000000Z","digest":"v3","name":"[2/3] COPY app.sh /app.sh","started":"2023-11-14T22:13:20.300000000Z"}]}
{"vertexes":[{"digest":"v4","name":"[3/3] RUN ./app.sh","started":"2023-11-14T22:13:20.400000000Z"}]}
{"logs":[{"data":"bGluZSAxCg==","stream":1,"timestamp":"2023-11-14T22:13:20.510000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSAyCg==","stream":2,"timestamp":"2023-11-14T22:13:20.520000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSAzCg==","stream":1,"timestamp":"2023-11-14T22:13:20.530000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSA0Cg==","stream":2,"timestamp":"2023-11-14T22:13:20.540000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSA1Cg==","stream":1,"timestamp":"2023-11-14T22:13:20.550000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSA2Cg==","stream":2,"timestamp":"2023-11-14T22:13:20.560000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSA3Cg==","stream":1,"timestamp":"2023-11-14T22:13:20.570000000Z","vertex":"v4"}]}
{"logs":[{"data":"bGluZSA4Cg==","stream":2,"timestamp":"2023-11-14T22:13:20.580000000Z","vertex":"v4"}]}
{"warnings":[{"short":"RlJPTSAtLXBsYXRmb3JtIGZsYWcgc2hvdWxkIG5vdCB1c2UgYSBjb25zdGFudCB2YWx1ZQ==","vertex":null}]}
{"vertexes":[{"completed":"2023-11-14T22:13:21.400000000Z","digest":"v4","error":"process \"/bin/sh -c ./app.sh\" did not complete successfully: exit code: 1","name":"[3/3] RUN ./app.sh","started":"2023-11-14T22:13:20.400000000Z"}]}
"#;

/// A terminal that rewraps its lines when resized (as VTE, kitty, iTerm2 and Windows
/// Terminal do): it keeps logical lines and lays them out at the current width.
struct Reflowing {
    width: usize,
    lines: Vec<Vec<char>>,
    line: usize,
    /// Physical row within the logical line, and column in it (`width`: wrap pending).
    prow: usize,
    pcol: usize,
}

impl Reflowing {
    fn new(width: usize) -> Self {
        Self {
            width,
            lines: vec![Vec::new()],
            line: 0,
            prow: 0,
            pcol: 0,
        }
    }

    fn rows_of(&self, line: usize) -> usize {
        self.lines[line].len().div_ceil(self.width).max(1)
    }

    fn resize(&mut self, width: usize) {
        let col = self.prow * self.width + self.pcol;
        self.width = width;
        self.prow = col / width;
        self.pcol = col % width;
    }

    fn feed(&mut self, bytes: &[u8]) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\r' => self.pcol = 0,
                '\n' => {
                    self.line += 1;
                    (self.prow, self.pcol) = (0, 0);
                    if self.lines.len() <= self.line {
                        self.lines.push(Vec::new());
                    }
                }
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['));
                    let mut arg = String::new();
                    let cmd = loop {
                        let c = chars.next().unwrap();
                        if c.is_ascii_digit() {
                            arg.push(c);
                        } else {
                            break c;
                        }
                    };
                    match cmd {
                        'A' => {
                            for _ in 0..arg.parse().unwrap_or(1) {
                                if self.prow > 0 {
                                    self.prow -= 1;
                                } else if self.line > 0 {
                                    self.line -= 1;
                                    self.prow = self.rows_of(self.line) - 1;
                                }
                            }
                        }
                        'J' => {
                            let at = self.prow * self.width + self.pcol;
                            self.lines[self.line].truncate(at);
                            self.lines.truncate(self.line + 1);
                        }
                        'm' => {}
                        other => panic!("unexpected escape sequence {other}"),
                    }
                }
                c => {
                    if self.pcol == self.width {
                        self.prow += 1;
                        self.pcol = 0;
                    }
                    let at = self.prow * self.width + self.pcol;
                    let line = &mut self.lines[self.line];
                    if line.len() <= at {
                        line.resize(at, ' ');
                        line.push(c);
                    } else {
                        line[at] = c;
                    }
                    self.pcol += 1;
                }
            }
        }
    }

    /// The screen's rows at the current width.
    fn rows(&self) -> Vec<String> {
        let mut rows = Vec::new();
        for line in &self.lines {
            if line.is_empty() {
                rows.push(String::new());
            }
            for chunk in line.chunks(self.width) {
                rows.push(chunk.iter().collect::<String>().trim_end().to_string());
            }
        }
        while rows.last().is_some_and(|r| r.is_empty()) {
            rows.pop();
        }
        rows
    }
}

#[test]
fn terminal_view_follows_a_resized_terminal() {
    let (first, rest) = script();
    for narrower in [40, 71, 100] {
        let size = Arc::new(Mutex::new((72usize, 40usize)));
        let out = SharedBuf::default();
        let source = size.clone();
        let mut r = TtyRenderer::new(out.clone(), 72, 40, Clock::Events)
            .sized_by(move || Some(*source.lock().unwrap()));
        let mut term = Reflowing::new(72);
        let mut fed = 0;
        let mut feed = |term: &mut Reflowing| {
            let bytes = out.0.lock().unwrap();
            term.feed(&bytes[fed..]);
            fed = bytes.len();
        };
        for e in &first {
            r.event(e);
        }
        feed(&mut term);
        // The terminal is resized between two frames.
        *size.lock().unwrap() = (narrower, 40);
        term.resize(narrower);
        for e in &rest {
            r.event(e);
        }
        r.finish(false);
        feed(&mut term);

        // What a renderer that always had the new width shows.
        let fresh_out = SharedBuf::default();
        let mut fresh = TtyRenderer::new(fresh_out.clone(), narrower, 40, Clock::Events);
        for e in first.iter().chain(&rest) {
            fresh.event(e);
        }
        fresh.finish(false);
        let mut expected = Reflowing::new(narrower);
        expected.feed(&fresh_out.0.lock().unwrap());

        let rows = term.rows();
        assert_eq!(rows, expected.rows(), "width {narrower}");
        // The frame itself fits: only the error output after it may wrap.
        let frame_end = rows.iter().position(|r| r == "------").unwrap();
        for row in &rows[..frame_end] {
            assert!(
                row.chars().count() <= narrower,
                "{row:?} at width {narrower}"
            );
        }
    }
}
