//! One admin request read with httparse, and the response it gets.

/// What a request asks for, once its head is whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// `GET /metrics`.
    Metrics,
    /// `GET /healthz`.
    Health,
    /// `GET /readyz`.
    Readiness,
    /// A path the endpoint does not serve.
    NotFound,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// More headers than [`MAX_HEADERS`], or a head over the size limit.
    HeadTooLarge,
    /// Not HTTP/1.x.
    BadRequest,
}

/// Headers a request may carry (a Prometheus scrape sends about five).
pub(crate) const MAX_HEADERS: usize = 32;

/// The request's head, read from `buffer`: `None` while it is not whole.
/// `head_only` is set for HEAD, whose response carries no body.
pub(crate) fn read_head(buffer: &[u8]) -> Option<(Asked, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buffer) {
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(_)) => {
            let head_only = request.method == Some("HEAD");
            let asked = match request.method {
                Some("GET" | "HEAD") => match request.path.map(path_of) {
                    Some("/metrics") => Asked::Metrics,
                    Some("/healthz") => Asked::Health,
                    Some("/readyz") => Asked::Readiness,
                    _ => Asked::NotFound,
                },
                _ => Asked::MethodNotAllowed,
            };
            Some((asked, head_only))
        }
        Err(httparse::Error::TooManyHeaders) => Some((Asked::HeadTooLarge, false)),
        Err(_) => Some((Asked::BadRequest, false)),
    }
}

/// The path without its query (`/metrics?x=1` is `/metrics`).
fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// Appends a whole response to `out`: status, the headers every response
/// carries (`Connection: close`: one request per connection), and `body`
/// unless `head_only`.
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        )
        .as_bytes(),
    );
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::{Asked, MAX_HEADERS, read_head};

    /// A request's bytes and what they ask, once whole.
    type Case = (&'static [u8], Option<(Asked, bool)>);

    #[test]
    fn each_path_and_method_is_told_apart() {
        let cases: [Case; 9] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Some((Asked::Metrics, false)),
            ),
            (
                b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n",
                Some((Asked::Metrics, false)),
            ),
            (
                b"HEAD /healthz HTTP/1.0\r\n\r\n",
                Some((Asked::Health, true)),
            ),
            (
                b"GET /readyz HTTP/1.1\r\n\r\n",
                Some((Asked::Readiness, false)),
            ),
            (
                b"GET /admin HTTP/1.1\r\n\r\n",
                Some((Asked::NotFound, false)),
            ),
            (
                b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Some((Asked::MethodNotAllowed, false)),
            ),
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n", None),
            (
                b"\x16\x03\x01\x02\x00\x01\x00",
                Some((Asked::BadRequest, false)),
            ),
            (
                b"GET /metrics SMTP/1.1\r\n\r\n",
                Some((Asked::BadRequest, false)),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                read_head(request),
                expected,
                "{}",
                String::from_utf8_lossy(request)
            );
        }
    }

    #[test]
    fn more_headers_than_the_limit_is_too_large() {
        let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for n in 0..=MAX_HEADERS {
            request.extend_from_slice(format!("X-{n}: y\r\n").as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        assert_eq!(read_head(&request), Some((Asked::HeadTooLarge, false)));
    }
}
