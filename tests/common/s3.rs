//! S3 (LocalStack) for integration tests: scripts/test.sh starts one LocalStack per run and
//! exports its endpoint; each test works in a bucket of its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The LocalStack endpoint (`http://127.0.0.1:PORT`) started by scripts/test.sh.
pub fn endpoint() -> String {
    std::env::var("STRATO_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "STRATO_TEST_S3_ENDPOINT is not set: run the tests through ./scripts/test.sh, \
             which installs and starts LocalStack"
        )
    })
}

/// `host:port` of an `http://host:port` endpoint.
pub fn host_port(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Creates a fresh bucket with a unique name and returns the name. LocalStack accepts an
/// unsigned `PUT /<bucket>` (path-style CreateBucket).
pub fn create_bucket(endpoint: &str) -> String {
    let name = format!("strato-test-{}", uuid::Uuid::new_v4().simple());
    let addr = host_port(endpoint);
    let mut stream = TcpStream::connect(&addr).expect("connect to LocalStack");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read CreateBucket response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "CreateBucket {name} failed: {response}"
    );
    name
}
