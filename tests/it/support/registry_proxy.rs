//! A registry seen through a proxy that notes every request it forwards: what a test
//! counts to know which blobs a build downloaded (the test registries log no requests).
//!
//! The proxy reads each request's head and body framing (Content-Length or chunked) so
//! that it sees every request of a kept-alive connection; responses pass through as bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct RegistryProxy {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
    cut: Arc<Mutex<Option<Cut>>>,
}

/// A download to cut short: the blob, how many bytes of it to send, and whether the
/// connection is then closed or held open with nothing more sent (told on `stalled`).
struct Cut {
    digest: String,
    keep: usize,
    stalled: Option<std::sync::mpsc::Sender<()>>,
}

impl RegistryProxy {
    /// Forwards a new port of 127.0.0.1 to `upstream` (`host:port`) until the test process
    /// ends.
    pub fn start(upstream: &str) -> RegistryProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the registry proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let cut: Arc<Mutex<Option<Cut>>> = Arc::default();
        let (noted, upstream, armed) = (requests.clone(), upstream.to_string(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (noted, upstream, armed) = (noted.clone(), upstream.clone(), armed.clone());
                std::thread::spawn(move || forward(client, &upstream, &noted, &armed));
            }
        });
        RegistryProxy {
            addr,
            requests,
            cut,
        }
    }

    /// The next GET of blob `digest` is answered with its first `keep` bytes (under the
    /// whole blob's Content-Length), and its connection then closed: a download that fails
    /// on the way. Later GETs are forwarded.
    pub fn cut_next_download(&self, digest: &str, keep: usize) {
        *self.cut.lock().unwrap() = Some(Cut {
            digest: digest.to_string(),
            keep,
            stalled: None,
        });
    }

    /// The next GET of blob `digest` is answered with its headers and first `keep` bytes,
    /// then nothing more on a connection held open: a registry that stops mid-blob. The
    /// receiver hears when that answer has been sent.
    pub fn stall_next_download(&self, digest: &str, keep: usize) -> std::sync::mpsc::Receiver<()> {
        let (stalled, heard) = std::sync::mpsc::channel();
        *self.cut.lock().unwrap() = Some(Cut {
            digest: digest.to_string(),
            keep,
            stalled: Some(stalled),
        });
        heard
    }

    /// `127.0.0.1:PORT`: the registry's name through the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Every request line so far (`GET /v2/… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The digests of the blobs of `repository` fetched (GET) so far, in order.
    pub fn blob_gets(&self, repository: &str) -> Vec<String> {
        let prefix = format!("GET /v2/{repository}/blobs/");
        self.requests()
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|rest| {
                rest.split([' ', '?'])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        self.requests.lock().unwrap().clear();
    }
}

fn forward(
    client: TcpStream,
    upstream: &str,
    noted: &Mutex<Vec<String>>,
    cut: &Mutex<Option<Cut>>,
) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut back), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    let responses = std::thread::spawn(move || {
        let _ = std::io::copy(&mut back, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let mut reader = BufReader::new(client);
    let mut to_server = server;
    while let Some(line) = forward_request(&mut reader, &mut to_server, |line| {
        let mut cut = cut.lock().unwrap();
        let armed = cut.as_ref().is_some_and(|c| {
            line.starts_with("GET ") && line.contains(&format!("/blobs/{}", c.digest))
        });
        if armed { cut.take() } else { None }
    }) {
        let (line, cut_short) = line;
        noted.lock().unwrap().push(line.clone());
        if let Some(cut_short) = cut_short {
            answer_cut_short(reader.get_ref(), upstream, &line, cut_short);
            break;
        }
    }
    let _ = to_server.shutdown(Shutdown::Write);
    let _ = responses.join();
}

/// Forwards one request unless `cut` says to cut its answer short (the caller then answers
/// it); its request line, or None at the end of the connection.
fn forward_request(
    reader: &mut BufReader<TcpStream>,
    server: &mut TcpStream,
    cut: impl Fn(&str) -> Option<Cut>,
) -> Option<(String, Option<Cut>)> {
    let mut head = Vec::new();
    let mut first = None;
    let mut length = 0u64;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(line.as_bytes());
        let text = line.trim_end();
        if first.is_none() {
            first = Some(text.to_string());
            continue;
        }
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "content-length" {
            length = value.parse().ok()?;
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let first = first?;
    if let Some(cut_short) = cut(&first) {
        return Some((first, Some(cut_short)));
    }
    server.write_all(&head).ok()?;
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            server.write_all(size_line.as_bytes()).ok()?;
            let size = u64::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = String::new();
                    reader.read_line(&mut trailer).ok()?;
                    server.write_all(trailer.as_bytes()).ok()?;
                    if trailer.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy_exactly(reader, server, size + 2)?;
        }
    } else {
        copy_exactly(reader, server, length)?;
    }
    Some((first, None))
}

/// Answers `request_line` (a GET of a blob) with a whole blob's headers and its first
/// `cut.keep` bytes, fetched from `upstream` on a connection of its own, then closes the
/// client's connection or, for a stall, holds it open.
fn answer_cut_short(client: &TcpStream, upstream: &str, request_line: &str, cut: Cut) {
    let keep = cut.keep;
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let mut server = TcpStream::connect(upstream).expect("connect to the registry");
    write!(server, "GET {path} HTTP/1.0\r\nHost: {upstream}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer")
        + 4;
    let body = &answer[split..];
    let mut client = client;
    let _ = write!(
        client,
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(&body[..keep.min(body.len())]);
    match cut.stalled {
        Some(stalled) => {
            let _ = stalled.send(());
            // Held open, silent, for as long as the test process lives.
            loop {
                std::thread::park();
            }
        }
        None => {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
}

fn copy_exactly(reader: &mut BufReader<TcpStream>, server: &mut TcpStream, n: u64) -> Option<()> {
    let copied = std::io::copy(&mut reader.by_ref().take(n), server).ok()?;
    (copied == n).then_some(())
}
