//! The live view on a real pseudo-terminal that is narrowed while a step runs: the next
//! frame fits the new width and moves back over the whole previous frame, however many
//! lines the terminal rewrapped it into.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};

const WIDE: u16 = 120;
const NARROW: u16 = 50;

fn winsize(cols: u16) -> Winsize {
    Winsize {
        ws_row: 40,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The frames in `text`: for each, how many lines the renderer moved up before drawing it,
/// and its rows.
fn frames(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut frames = Vec::new();
    let mut rest = text;
    let mut up = 0;
    loop {
        let (frame, next) = match rest.find("\r\x1b[") {
            Some(i) => (&rest[..i], Some(&rest[i + 3..])),
            None => (rest, None),
        };
        let rows = frame
            .split('\n')
            .map(|r| r.trim_end_matches('\r').to_string())
            .filter(|r| !r.is_empty())
            .collect();
        frames.push((up, rows));
        let Some(next) = next else { break };
        let end = next.find("A\x1b[J").expect("cursor up, then erase below");
        up = next[..end].parse().unwrap();
        rest = &next[end + 4..];
    }
    frames
}

#[test]
fn a_narrowed_terminal_gets_frames_that_fit() {
    if !(support::require_base_image() && support::require_runc()) {
        return;
    }
    // The step waits on this listener: the terminal is resized while it runs.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN wget -q -O- http://{}/ && echo resumed\n",
            support::BASE_IMAGE,
            listener.local_addr().unwrap()
        ),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();

    // Close-on-exec: the other tests of this binary start processes at the same time, and
    // none of them may hold the terminal.
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let slave: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap()
        .into();
    tcsetwinsize(&master, winsize(WIDE)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "tty", "-o", "type=tar,dest=/dev/null"])
        .arg(context.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let (chunks, received) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        // Ends with EIO once bud, the last holder of the terminal, exits.
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || chunks.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let (mut step, _) = listener.accept().unwrap();
    // The running step is on screen in a frame drawn for the wide terminal before the
    // terminal narrows.
    let mut output = Vec::new();
    while !String::from_utf8_lossy(&output).contains("[2/2] RUN wget") {
        output.extend(received.recv().expect("bud's terminal closed early"));
    }
    tcsetwinsize(&master, winsize(NARROW)).unwrap();
    let mut request = [0u8; 1024];
    let _ = step.read(&mut request).unwrap();
    step.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        .unwrap();
    drop(step);
    let status = child.wait().unwrap();
    drop(master);
    output.extend(received.iter().flatten());
    let text = String::from_utf8_lossy(&output);
    assert!(status.success(), "{text}");

    let frames = frames(&text);
    assert!(frames.len() >= 2, "{text:?}");
    let width = |r: &String| console::measure_text_width(r);
    assert!(
        frames[0].1.iter().any(|r| width(r) > usize::from(NARROW)),
        "the first frame is drawn for the wide terminal: {:?}",
        frames[0]
    );
    let (up, last) = &frames[frames.len() - 1];
    let previous = &frames[frames.len() - 2].1;
    assert!(last[0].contains("FINISHED"), "{last:?}");
    for row in last {
        assert!(width(row) <= usize::from(NARROW), "{row:?} in {last:?}");
    }
    // However the previous frame was drawn, the narrow terminal rewrapped it to this many
    // lines: moving up fewer would leave some of it on screen.
    let lines: usize = previous
        .iter()
        .map(|r| width(r).div_ceil(usize::from(NARROW)).max(1))
        .sum();
    assert_eq!(*up, lines, "previous frame {previous:?}");
}
