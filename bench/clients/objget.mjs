// objget, native or JS engine (OBJGET_ENGINE), at default settings unless the job sets
// `durable` or `checksum`.
import { join } from 'node:path';
import { job, report, sha256 } from './common.mjs';

const objget = await import(join(job.root, 'dist', 'index.js'));
const store = job.s3 && {
  config: {
    aws_access_key_id: job.s3.accessKeyId,
    aws_secret_access_key: job.s3.secretAccessKey,
    aws_endpoint: job.via === 'gateway' ? job.gateway : job.s3.endpoint,
    aws_region: job.s3.region,
  },
  rdma: job.rdma,
};
const url = (key) => `s3://${job.s3.bucket}/${key}`;

switch (job.kind) {
  case 'file':
    await objget.download(job.url ?? url(job.keys[0]), join(job.out, 'out.bin'), {
      store,
      durable: job.durable,
      checksum: job.checksum,
    });
    report();
    break;
  case 'memory': {
    if (job.rdma) {
      // The size a loader knows from its manifest; registration is part of the timed run.
      const info = await objget.head(url(job.keys[0]), { store });
      const into = objget.allocRdmaBuffer(info.size);
      const { data, result } = await objget.getDetailed(url(job.keys[0]), {
        store,
        into,
        checksum: job.checksum,
      });
      if (result.path !== 'rdma') throw new Error(`path ${result.path}`);
      report({ sha256: sha256(data) });
      break;
    }
    const buf = await objget.get(url(job.keys[0]), { store, checksum: job.checksum });
    report({ sha256: sha256(buf) });
    break;
  }
  case 'many':
    await objget.downloadMany(
      job.keys.map((k) => ({ url: url(k), dest: join(job.out, k) })),
      { store, concurrency: job.concurrency, durable: job.durable, checksum: job.checksum },
    );
    report();
    break;
  case 'upload':
    await objget.upload(job.src, url(job.keys[0]), { store });
    report();
    break;
  default:
    throw new Error(`unknown job ${job.kind}`);
}
