//! A streaming upload driven from outside, chunk by chunk: the caller `write`s chunks as its
//! stream produces them (each resolving when the engine has room: backpressure), then
//! `finish`es; `abort` gives up and the engine removes any parts. The upload runs as a task fed
//! by a bounded channel ([`UploadSource::Stream`]); its error, when it stops early, is what the
//! next `write` answers.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{
    CancellationToken, Engine, Error, ErrorCode, Result, UploadOptions, UploadResult, UploadSource,
};

/// Chunks queued between the caller and the upload: beyond them `write` waits.
pub const CHUNKS_IN_FLIGHT: usize = 16;

/// An upload whose bytes arrive by [`write`](StreamUpload::write).
#[derive(Debug)]
pub struct StreamUpload {
    tx: std::sync::Mutex<Option<mpsc::Sender<Bytes>>>,
    task: tokio::sync::Mutex<Option<JoinHandle<Result<UploadResult>>>>,
    cancel: CancellationToken,
}

impl StreamUpload {
    /// Start uploading to `url` (size unknown: parts are cut as chunks arrive). `cancel`
    /// stops it as [`abort`](Self::abort) does. Must be called within a Tokio runtime.
    pub fn start(
        engine: &'static Engine,
        url: String,
        opts: UploadOptions,
        cancel: &CancellationToken,
    ) -> Self {
        let cancel = cancel.child_token();
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let engine_cancel = cancel.clone();
        let task = tokio::spawn(async move {
            engine
                .upload(UploadSource::Stream(rx), &url, &opts, &engine_cancel)
                .await
        });
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            task: tokio::sync::Mutex::new(Some(task)),
            cancel,
        }
    }

    /// Hand one chunk to the upload, waiting while its queue is full. After `finish` or
    /// `abort`: `InvalidArgument`; when the upload stopped early: its error.
    pub async fn write(&self, chunk: Bytes) -> Result<()> {
        let tx = self.tx.lock().ok().and_then(|t| t.clone());
        let Some(tx) = tx else {
            return Err(Error::invalid_argument("write after finish or abort"));
        };
        if tx.send(chunk).await.is_err() {
            // The engine stopped early: its error says why.
            drop(tx);
            return Err(match self.outcome().await {
                Err(e) => e,
                Ok(_) => Error::new(ErrorCode::Generic, "the upload ended before the stream did"),
            });
        }
        Ok(())
    }

    /// The stream ended: send what is left and complete the upload.
    pub async fn finish(&self) -> Result<UploadResult> {
        self.close();
        self.outcome().await
    }

    /// Give up: the engine aborts any multipart upload and stores nothing. Settles once the
    /// upload has stopped.
    pub async fn abort(&self) {
        self.cancel.cancel();
        self.close();
        let _ = self.outcome().await;
    }

    fn close(&self) {
        if let Ok(mut t) = self.tx.lock() {
            t.take();
        }
    }

    async fn outcome(&self) -> Result<UploadResult> {
        let task = self.task.lock().await.take();
        let Some(task) = task else {
            return Err(Error::invalid_argument("the upload already ended"));
        };
        task.await
            .map_err(|e| Error::new(ErrorCode::Generic, format!("upload task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

    fn dest(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, String) {
        let path = dir.path().join(name);
        let url = path.to_str().unwrap().to_string();
        (path, url)
    }

    #[tokio::test]
    async fn chunks_written_then_finished_are_stored_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, url) = dest(&dir, "o.bin");
        let up = StreamUpload::start(&ENGINE, url, UploadOptions::default(), &Default::default());
        let mut want = Vec::new();
        // More chunks than the queue holds: writes wait for room rather than fail.
        for i in 0..(CHUNKS_IN_FLIGHT * 3) {
            let chunk = vec![i as u8; 1000 + i];
            want.extend_from_slice(&chunk);
            up.write(Bytes::from(chunk)).await.unwrap();
        }
        let r = up.finish().await.unwrap();
        assert_eq!(r.bytes, want.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[tokio::test]
    async fn a_write_after_finish_or_abort_is_invalid_argument() {
        let dir = tempfile::tempdir().unwrap();
        let (_, url) = dest(&dir, "a.bin");
        let up = StreamUpload::start(&ENGINE, url, UploadOptions::default(), &Default::default());
        up.write(Bytes::from_static(b"abc")).await.unwrap();
        up.finish().await.unwrap();
        let e = up.write(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
        // The outcome is taken once.
        assert_eq!(
            up.finish().await.unwrap_err().code(),
            ErrorCode::InvalidArgument
        );

        let (_, url) = dest(&dir, "b.bin");
        let up = StreamUpload::start(&ENGINE, url, UploadOptions::default(), &Default::default());
        up.abort().await;
        let e = up.write(Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
    }

    #[tokio::test]
    async fn abort_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_, url) = dest(&dir, "gone.bin");
        let up = StreamUpload::start(&ENGINE, url, UploadOptions::default(), &Default::default());
        up.write(Bytes::from(vec![7u8; 100_000])).await.unwrap();
        up.abort().await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn the_caller_s_token_cancels_it_as_abort_does() {
        let dir = tempfile::tempdir().unwrap();
        let (_, url) = dest(&dir, "c.bin");
        let cancel = CancellationToken::new();
        let up = StreamUpload::start(&ENGINE, url, UploadOptions::default(), &cancel);
        up.write(Bytes::from(vec![1u8; 1000])).await.unwrap();
        cancel.cancel();
        let e = up.finish().await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Aborted);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn an_upload_that_stops_early_answers_the_next_write_with_its_error() {
        let up = StreamUpload::start(
            &ENGINE,
            "ftp://host/key".to_string(),
            UploadOptions::default(),
            &Default::default(),
        );
        // The first writes may fit in the queue before the upload has failed; one of the next
        // finds it closed and answers with the upload's own error.
        let mut err = None;
        for _ in 0..(CHUNKS_IN_FLIGHT * 4) {
            if let Err(e) = up.write(Bytes::from_static(b"x")).await {
                err = Some(e);
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            err.expect("a write fails").code(),
            ErrorCode::UnsupportedScheme
        );
    }
}
