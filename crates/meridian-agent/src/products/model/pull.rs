//! Getting model weights onto the node: from a blob directory or a peer agent's data server,
//! at a set rate, resuming an interrupted copy where it stopped, and verified against their
//! SHA-256 before anything may load them.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actuator::Progress;
use crate::products::support::Throttle;

/// Reads a digest file: 64 hex digits, optionally followed by a file name (`sha256sum`'s
/// format).
pub fn parse_digest(text: &str, origin: &str) -> Result<String, String> {
    let digest = text.split_whitespace().next().unwrap_or("");
    if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(digest.to_ascii_lowercase())
    } else {
        Err(format!("{origin}: not a SHA-256 digest: {:?}", text.trim()))
    }
}

/// The SHA-256 of a file, hex.
pub async fn sha256_of(path: &Path) -> Result<String, String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file =
            std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(format!("{:x}", hasher.finalize()))
    })
    .await
    .map_err(|e| format!("hashing: {e}"))?
}

/// The length of what an earlier, interrupted copy left in `partial` (0 if none).
fn resume_from(partial: &Path) -> u64 {
    std::fs::metadata(partial).map_or(0, |m| m.len())
}

async fn open_for_append(partial: &Path, from: u64) -> Result<tokio::fs::File, String> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(partial)
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    file.set_len(from)
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    Ok(file)
}

/// Copies `source` into `partial` (appending to what an earlier attempt copied) at no more
/// than `rate_mbps`; returns the total length.
pub async fn from_file(
    source: &Path,
    partial: &Path,
    rate_mbps: Option<f64>,
    progress: &Progress,
) -> Result<u64, String> {
    let mut done = resume_from(partial);
    let mut input = tokio::fs::File::open(source)
        .await
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let length = input
        .metadata()
        .await
        .map_err(|e| format!("{}: {e}", source.display()))?
        .len();
    if done > length {
        // Not a prefix of this file: start over.
        done = 0;
    }
    let mut output = open_for_append(partial, done).await?;
    tokio::io::AsyncSeekExt::seek(&mut input, std::io::SeekFrom::Start(done))
        .await
        .map_err(|e| format!("{}: {e}", source.display()))?;
    let mut throttle = Throttle::new(rate_mbps.unwrap_or(f64::INFINITY));
    let mut buffer = vec![0u8; throttle.chunk_max().clamp(4096, 1 << 20)];
    progress.set_bytes_done(done);
    loop {
        let read = input
            .read(&mut buffer)
            .await
            .map_err(|e| format!("{}: {e}", source.display()))?;
        if read == 0 {
            break;
        }
        throttle.take(read).await;
        output
            .write_all(&buffer[..read])
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        done += read as u64;
        progress.set_bytes_done(done);
    }
    finish(output, partial).await?;
    Ok(done)
}

/// Downloads `url` into `partial`, asking only for the bytes an earlier attempt did not get
/// (a Range request), at no more than `rate_mbps`; returns the total length.
pub async fn from_url(
    client: &reqwest::Client,
    url: reqwest::Url,
    token: Option<&str>,
    partial: &Path,
    rate_mbps: f64,
    progress: &Progress,
) -> Result<u64, String> {
    let mut done = resume_from(partial);
    let mut request = client.get(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if done > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={done}-"));
    }
    let mut response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    match response.status() {
        reqwest::StatusCode::PARTIAL_CONTENT => {}
        reqwest::StatusCode::OK => done = 0,
        // The earlier attempt got every byte: verification decides if they are right.
        reqwest::StatusCode::RANGE_NOT_SATISFIABLE => return Ok(done),
        status => return Err(format!("{url}: {status}")),
    }
    let mut output = open_for_append(partial, done).await?;
    let mut throttle = Throttle::new(rate_mbps);
    progress.set_bytes_done(done);
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
        throttle.take(chunk.len()).await;
        output
            .write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        done += chunk.len() as u64;
        progress.set_bytes_done(done);
    }
    finish(output, partial).await?;
    Ok(done)
}

/// Fetches a small text file (a digest) from a peer.
pub async fn text_from_url(
    client: &reqwest::Client,
    url: reqwest::Url,
    token: Option<&str>,
) -> Result<String, String> {
    let mut request = client.get(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    response.text().await.map_err(|e| format!("{url}: {e}"))
}

/// On disk before it is verified and renamed.
async fn finish(mut output: tokio::fs::File, partial: &Path) -> Result<(), String> {
    output
        .flush()
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    output
        .sync_all()
        .await
        .map_err(|e| format!("{}: {e}", partial.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_in_sha256sum_format() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(
            parse_digest(&format!("{hex}  model.bin\n"), "x").as_deref(),
            Ok(hex.to_ascii_lowercase().as_str())
        );
        let error = parse_digest("abc", "blobs/m.bin.sha256").expect_err("short");
        assert!(
            error.starts_with("blobs/m.bin.sha256: not a SHA-256"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_file_copy_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("source");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&source, &data).expect("write");
        let partial = dir.path().join("partial");
        std::fs::write(&partial, &data[..12_345]).expect("an interrupted copy");
        let progress = Progress::default();
        let length = from_file(&source, &partial, None, &progress)
            .await
            .expect("copy");
        assert_eq!(length, data.len() as u64);
        assert_eq!(std::fs::read(&partial).expect("read"), data);
        assert_eq!(progress.bytes_done(), data.len() as u64);
        assert_eq!(
            sha256_of(&partial).await.expect("hash"),
            format!("{:x}", Sha256::digest(&data))
        );
    }
}
