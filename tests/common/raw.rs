//! Raw sockets for hostile peers: bytes no well-behaved client library
//! would send, and an origin that answers with whatever bytes it is given.

use super::FLOW_WAIT;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends `request` on a fresh connection to `addr` and returns every byte
/// that comes back until the peer closes. Write errors are ignored (a
/// peer may answer and close before reading everything), and a reset ends
/// the reading like a close does. Fails the test if the peer neither
/// closes nor resets within [`FLOW_WAIT`]: hostile input must not leave a
/// connection hanging.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connecting");
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream).await
}

/// Everything `stream` yields until EOF or a reset (see [`exchange`]).
pub async fn read_until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(FLOW_WAIT, read)
        .await
        .expect("the peer closed the connection within the wait limit");
    got
}

/// Status codes of every HTTP/1 status line in `response`, in order.
pub fn statuses(response: &[u8]) -> Vec<u16> {
    response
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"HTTP/1.1 "))
        .filter_map(|rest| std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok())
        .collect()
}

/// An HTTP/1.1 origin on loopback with one canned answer: on every
/// connection it reads a request head, ignores it, writes `response` and
/// closes. For responses the test origin's routes cannot make (a gzip
/// bomb, a Content-Length that lies).
pub async fn canned_origin(response: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind canned origin");
    let addr = listener.local_addr().expect("canned origin addr");
    let response = std::sync::Arc::new(response);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                if read_head(&mut tcp).await {
                    let _ = tcp.write_all(&response).await;
                    let _ = tcp.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Reads up to the end of a request head; false if the peer went first.
async fn read_head<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    true
}
