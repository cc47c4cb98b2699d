use std::convert::Infallible;

use futures::StreamExt as _;
use http_body_util::BodyExt as _;

use super::*;

fn request(body: Body) -> Request {
    Request::new(body)
}

#[tokio::test]
async fn a_body_that_has_arrived_is_read_whole() {
    let timed = limit(
        request(Body::from("{\"events\":[]}")),
        Duration::from_secs(5),
    );
    let bytes = timed.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"{\"events\":[]}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_fails() {
    let chunks = futures::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"{\"ev"))])
        .chain(futures::stream::pending());
    let timed = limit(
        request(Body::from_stream(chunks)),
        Duration::from_millis(50),
    );
    let err = timed.into_body().collect().await.err().unwrap();
    assert_eq!(
        err.to_string(),
        "data was not received within the designated timeout"
    );
}
