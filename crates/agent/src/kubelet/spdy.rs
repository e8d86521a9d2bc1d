//! Just enough SPDY/3.1 for port-forwarding: the frames kubectl's client
//! (Go's spdystream) sends and expects, and the zlib-compressed header
//! blocks with SPDY's dictionary. Flow control is left out, as spdystream
//! ignores WINDOW_UPDATE.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
pub const FLAG_FIN: u8 = 1;
const HEADER_LEN: usize = 8;

/// A frame read from the client.
#[derive(Debug)]
pub enum Frame {
    SynStream {
        stream: u32,
        headers: Vec<(String, String)>,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    Reset {
        stream: u32,
    },
    Ping {
        id: u32,
    },
    GoAway,
    /// Settings, window updates and the like, which need no answer.
    Other,
}

/// One direction's header compression state: SPDY compresses every header
/// block of a session with one zlib stream.
pub struct Codec {
    inflate: Decompress,
    deflate: Compress,
}

impl Codec {
    pub fn new() -> io::Result<Codec> {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .map_err(io::Error::other)?;
        Ok(Codec {
            inflate: Decompress::new(true),
            deflate,
        })
    }

    /// Takes the first whole frame off `buffer`, if there is one.
    pub fn read_frame(&mut self, buffer: &mut Vec<u8>) -> io::Result<Option<Frame>> {
        if buffer.len() < HEADER_LEN {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, buffer[5], buffer[6], buffer[7]]) as usize;
        if buffer.len() < HEADER_LEN + length {
            return Ok(None);
        }
        let frame: Vec<u8> = buffer.drain(..HEADER_LEN + length).collect();
        let flags = frame[4];
        let payload = &frame[HEADER_LEN..];
        let word = |at: usize| -> io::Result<u32> {
            payload
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
                .ok_or_else(|| invalid("a frame too short"))
        };
        if frame[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                stream: u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]),
                fin: flags & FLAG_FIN != 0,
                data: payload.to_vec(),
            }));
        }
        let kind = u16::from_be_bytes([frame[2], frame[3]]);
        Ok(Some(match kind {
            SYN_STREAM => Frame::SynStream {
                stream: word(0)?,
                headers: parse_headers(&self.inflate(payload.get(10..).unwrap_or_default())?)?,
            },
            // Read only to keep the decompressor in step with the client's.
            HEADERS => {
                self.inflate(payload.get(4..).unwrap_or_default())?;
                Frame::Other
            }
            RST_STREAM => Frame::Reset { stream: word(0)? },
            PING => Frame::Ping { id: word(0)? },
            GOAWAY => Frame::GoAway,
            _ => Frame::Other,
        }))
    }

    /// SYN_REPLY with no headers: what the client waits for after each
    /// stream it opens.
    pub fn syn_reply(&mut self, stream: u32) -> io::Result<Vec<u8>> {
        let block = self.deflate(&0u32.to_be_bytes())?;
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend(block);
        Ok(control(SYN_REPLY, 0, &payload))
    }

    fn inflate(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            let result =
                self.inflate
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - before) as usize;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(io::Error::other)?;
                    continue;
                }
                Err(e) => return Err(io::Error::other(e)),
            }
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    fn deflate(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(1024);
        let before = self.deflate.total_in();
        self.deflate
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        if (self.deflate.total_in() - before) as usize != input.len() {
            return Err(invalid("a header block too large"));
        }
        Ok(out)
    }
}

/// A data frame; `fin` ends the stream from this side.
pub fn data(stream: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + data.len());
    frame.extend((stream & 0x7fff_ffff).to_be_bytes());
    frame.push(if fin { FLAG_FIN } else { 0 });
    frame.extend(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend(data);
    frame
}

pub fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend((0x8000 | VERSION).to_be_bytes());
    frame.extend(kind.to_be_bytes());
    frame.push(flags);
    frame.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend(payload);
    frame
}

/// A header block: a count, then length-prefixed names and values.
fn parse_headers(block: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut at = 0;
    let mut next = |len: usize| -> io::Result<&[u8]> {
        let part = block
            .get(at..at + len)
            .ok_or_else(|| invalid("a header block too short"))?;
        at += len;
        Ok(part)
    };
    let number = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = number(next(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = number(next(4)?);
        let name = String::from_utf8_lossy(next(len)?).into_owned();
        let len = number(next(4)?);
        let value = String::from_utf8_lossy(next(len)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("SPDY: {what}"))
}

/// SPDY/3's header compression dictionary (the SPDY/3 draft, section 2.6.10.1).
const DICTIONARY: &[u8] =
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03\
    put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\
    \x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-langu\
    age\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\
    \x00\x0dauthorization\x00\x00\x00\x0dcache-control\x00\x00\x00\x0aconnection\x00\
    \x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10conte\
    nt-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\
    \x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\x00\x0ccontent-t\
    ype\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\
    \x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\
    \x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-\
    range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\
    \x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\
    \x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05rang\
    e\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\
    \x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\
    \x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03\
    via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06met\
    hod\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\
    \x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\
    \x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin1001012\
    01202205206300302303304305306307402405406407408409410411412413414415416417502\
    504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 \
    Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Erro\
    r501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Se\
    pt Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/ht\
    ml,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/p\
    lain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8chars\
    et=iso-8859-1,utf-,*,enq=0.";

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block as the client writes one, through a client-side codec.
    fn client_syn_stream(client: &mut Compress, stream: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            block.extend((name.len() as u32).to_be_bytes());
            block.extend(name.as_bytes());
            block.extend((value.len() as u32).to_be_bytes());
            block.extend(value.as_bytes());
        }
        let mut compressed = Vec::with_capacity(1024);
        client
            .compress_vec(&block, &mut compressed, FlushCompress::Sync)
            .unwrap();
        let mut payload = stream.to_be_bytes().to_vec();
        payload.extend([0, 0, 0, 0, 0, 0]);
        payload.extend(compressed);
        control(SYN_STREAM, 0, &payload)
    }

    #[test]
    fn streams_headers_and_data_round_trip() {
        let mut client = Compress::new(Compression::default(), true);
        client.set_dictionary(DICTIONARY).unwrap();
        let mut server = Codec::new().unwrap();
        let mut wire =
            client_syn_stream(&mut client, 1, &[("streamType", "error"), ("port", "8080")]);
        wire.extend(client_syn_stream(
            &mut client,
            3,
            &[("streamType", "data"), ("port", "8080")],
        ));
        wire.extend(data(3, true, b"hello"));
        wire.extend(&ping(7)[..4]);
        let mut frames = Vec::new();
        while let Some(frame) = server.read_frame(&mut wire).unwrap() {
            frames.push(format!("{frame:?}"));
        }
        assert_eq!(
            frames,
            [
                r#"SynStream { stream: 1, headers: [("streamType", "error"), ("port", "8080")] }"#,
                r#"SynStream { stream: 3, headers: [("streamType", "data"), ("port", "8080")] }"#,
                r#"Data { stream: 3, fin: true, data: [104, 101, 108, 108, 111] }"#,
            ]
        );
        assert_eq!(wire.len(), 4, "half a frame waits for the rest");

        let reply = server.syn_reply(3).unwrap();
        let mut inflate = Decompress::new(true);
        let mut block = Vec::with_capacity(64);
        let result = inflate.decompress_vec(&reply[12..], &mut block, FlushDecompress::Sync);
        assert!(result.unwrap_err().needs_dictionary().is_some());
        inflate.set_dictionary(DICTIONARY).unwrap();
        let done = (inflate.total_in() as usize) + 12;
        inflate
            .decompress_vec(&reply[done..], &mut block, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(block, [0, 0, 0, 0]);
    }
}
