// Seeds the benchmark's many-object sets into MinIO with @aws-sdk, which stores a CRC32 with
// every PUT (as an application using it would): `bench:profile` and `bench:per-object` share it.
import { randomBytes } from 'node:crypto';

/** Put `keys` into the bucket, each `size` random bytes, 50 at a time. */
export async function seedObjects(s3info, keys, size) {
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({
    endpoint: s3info.endpoint,
    region: s3info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3info.accessKeyId, secretAccessKey: s3info.secretAccessKey },
  });
  try {
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((Key) =>
            s3.send(new PutObjectCommand({ Bucket: s3info.bucket, Key, Body: randomBytes(size) })),
          ),
      );
    }
  } finally {
    s3.destroy();
  }
}
