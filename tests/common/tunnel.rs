//! CONNECT tunnels opened by hand, for tests that speak raw bytes,
//! TLS or WebSocket through the proxy.

use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Opens a CONNECT tunnel through the proxy by hand and returns the stream
/// after the proxy's `200`; panics with the status line otherwise.
pub async fn connect_through(proxy: SocketAddr, target: &str, extra: &str) -> TcpStream {
    let (status, stream) = connect_status(proxy, target, extra).await;
    assert!(
        status.contains(" 200"),
        "CONNECT {target} answered {status:?}"
    );
    stream
}

pub async fn connect_status(proxy: SocketAddr, target: &str, extra: &str) -> (String, TcpStream) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
            break;
        }
    }
    if status.contains(" 200") {
        assert!(
            reader.buffer().is_empty(),
            "no bytes after the CONNECT answer"
        );
    }
    (status, reader.into_inner())
}
