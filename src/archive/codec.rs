//! Compression of the tar stream, in Rust, streaming: gzip (flate2 on
//! zlib-rs), zstd, lz4 (`lz4_flex` frames, readable by the `lz4` CLI) and none.
//! lzop has no maintained Rust codec: for it, tar itself runs the `lzop`
//! binary (`--lzop`), and these codecs pass the bytes through unchanged.
//!
//! Memory is bounded by each codec's window (zstd level 3: a few MiB).

use crate::config::Compression;
use std::io::{BufReader, Read, Write};

/// The tar flag that makes tar itself (de)compress, for codecs done outside Rust.
#[must_use]
pub fn tar_flag(c: Compression) -> Option<&'static str> {
    match c {
        Compression::Lzop => Some("--lzop"),
        _ => None,
    }
}

/// A compressing writer; [`Encoder::finish`] writes the trailer and returns
/// the inner writer.
pub enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    Plain(W),
}

impl<W: Write> Encoder<W> {
    pub fn new(c: Compression, inner: W) -> std::io::Result<Encoder<W>> {
        Ok(match c {
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
            Compression::Lz4 => Encoder::Lz4(lz4_flex::frame::FrameEncoder::new(inner)),
            Compression::Lzop | Compression::None => Encoder::Plain(inner),
        })
    }

    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Lz4(e) => e.finish().map_err(std::io::Error::other),
            Encoder::Plain(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            Encoder::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
            Encoder::Plain(w) => w.flush(),
        }
    }
}

/// A decompressing reader. Truncated or corrupt input is an error, never a
/// silent short stream.
pub enum Decoder<R: Read> {
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
    Lz4(lz4_flex::frame::FrameDecoder<R>),
    Plain(R),
}

impl<R: Read> Decoder<R> {
    pub fn new(c: Compression, inner: R) -> std::io::Result<Decoder<R>> {
        Ok(match c {
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(inner))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(inner)?),
            Compression::Lz4 => Decoder::Lz4(lz4_flex::frame::FrameDecoder::new(inner)),
            Compression::Lzop | Compression::None => Decoder::Plain(inner),
        })
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Lz4(d) => d.read(buf),
            Decoder::Plain(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips_and_truncation_is_an_error() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Lz4,
            Compression::None,
        ] {
            let mut e = Encoder::new(c, Vec::new()).unwrap();
            e.write_all(&data).unwrap();
            let packed = e.finish().unwrap();
            let mut out = Vec::new();
            Decoder::new(c, &packed[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{c:?}");
            if c != Compression::None {
                let cut = &packed[..packed.len() / 2];
                let mut out = Vec::new();
                let r = Decoder::new(c, cut).unwrap().read_to_end(&mut out);
                assert!(r.is_err(), "{c:?}: truncated input must fail");
            }
        }
    }
}
