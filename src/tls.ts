/**
 * TLS verification is switched off only by the explicit store option `insecureSkipTlsVerify`:
 * the `allow_invalid_certificates` configuration keys are refused, and the environment variables
 * that object_store would read (`AWS_ALLOW_INVALID_CERTIFICATES` and its kin) are ignored, with
 * one warning. Both engines pass every call's store options through here.
 */
import { StorageError } from './errors.js';
import type { StoreOptions } from './types.js';

let insecureUsed = false;
let envWarned = false;

const TURNS_OFF_TLS = /allow_invalid_certificates$/i;

/** Check a call's store options; throws `InvalidArgument` for a key that would disable TLS checks. */
export function checkStoreTls(store: StoreOptions | undefined): void {
  if (!envWarned) {
    const ignored = Object.keys(process.env).filter(
      (k) => /^(AWS|GOOGLE|AZURE)_/i.test(k) && TURNS_OFF_TLS.test(k),
    );
    if (ignored.length > 0) {
      envWarned = true;
      process.emitWarning(
        `${ignored.join(', ')} is ignored: objget turns TLS certificate checks off only with the store option insecureSkipTlsVerify: true`,
        { code: 'OBJGET_TLS_ENV_IGNORED' },
      );
    }
  }
  for (const key of Object.keys(store?.config ?? {})) {
    if (TURNS_OFF_TLS.test(key)) {
      throw new StorageError(
        'InvalidArgument',
        `'${key}' is not accepted: turning TLS certificate checks off takes the explicit store option insecureSkipTlsVerify: true`,
      );
    }
  }
  if (store?.insecureSkipTlsVerify === true) insecureUsed = true;
}

/** Whether any call in this process ran with TLS certificate checks off. */
export function insecureTlsUsed(): boolean {
  return insecureUsed;
}
