// Package upload serves HTTP File Upload (XEP-0363): the service
// upload.<domain>, which grants the accounts here slots (an
// UploadSlotGranted event each, through the account streams: the quota
// is derived from them), and the http.Handler that takes a slot's PUT and
// serves its GET, mounted on the server's HTTP listener.
//
// Files are not events: each slot is a directory of the data directory's
// uploads/, named by a hash of the URL's secret token, holding the
// slot's description (slot.json, written at the grant) and, once
// uploaded, the file. A sweeper deletes them when they expire.
package upload
