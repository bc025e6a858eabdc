// Package upload keeps the rules of HTTP File Upload (XEP-0363) that are
// an account's state: the slots it was granted, each an
// UploadSlotGranted event in its stream (who uploaded what, when and how
// big, for the auditors), and from them its quota. The files themselves
// are not events: the adapter keeps them in the data directory.
package upload
