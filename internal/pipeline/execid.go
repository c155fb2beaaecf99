package pipeline

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
)

// uuidNamespaceURL is RFC 9562's namespace for URLs, 6ba7b811-9dad-11d1-80b4-00c04fd430c8.
var uuidNamespaceURL = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// stepNamespace is the namespace of step execution ids: the version-5 UUID of the URL
// "https://lambda-microservice/pipeline/step-execution" (StepNamespace).
var stepNamespace = uuidV5(uuidNamespaceURL, "https://lambda-microservice/pipeline/step-execution")

// StepExecutionID is the execution id of a step's calls in a run: a name-based UUID
// (RFC 9562 version 5: SHA-1 over StepNamespace() and the name "<runID>/<stepID>", or
// "<runID>/<stepID>/<item>" for a map item), formatted 8-4-4-4-12 in lowercase hex.
//
// The same run, step and item always give the same id, so recording is idempotent across
// a retried activity, a replayed workflow task and a sync run handed over to a workflow
// (the store upserts executions on their id); the attempts of a step under its retry
// policy are attempts of that one execution. A new run (retry-from-step) has a new run id
// and so new execution ids.
func StepExecutionID(runID, stepID string, item int) string {
	name := make([]byte, 0, len(runID)+len(stepID)+12)
	name = append(name, runID...)
	name = append(name, '/')
	name = append(name, stepID...)
	if item >= 0 {
		name = append(name, '/')
		name = strconv.AppendInt(name, int64(item), 10)
	}
	return formatUUID(uuidV5Bytes(stepNamespace, name))
}

func uuidV5(ns [16]byte, name string) [16]byte {
	return uuidV5Bytes(ns, []byte(name))
}

func uuidV5Bytes(ns [16]byte, name []byte) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write(name)
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return u
}

func formatUUID(u [16]byte) string {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return string(buf[:])
}

// StepNamespace is the UUID namespace of StepExecutionID.
func StepNamespace() string { return formatUUID(stepNamespace) }
