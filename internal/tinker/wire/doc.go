// Package wire is the protobuf codec of the Tinker training API: the request
// body of POST /api/v1/forward_backward and the two results retrieve_future
// answers in protobuf (ForwardBackwardOutput, SampleResponse).
//
// The schema is the project's own tinker_public.proto, written from the field
// facts in shared/ref/tinker (same package name, field numbers and types as
// the Python SDK's descriptor), and compiled with protoc-gen-go v1.36.12; the
// generated tinker_public.pb.go is committed so a build needs no protoc. We
// chose generated code over descriptors built in Go because it gives typed
// structs, proto.Equal and deterministic marshalling for free, and a reviewer
// can read the schema as .proto text.
//
// Numeric arrays travel as little-endian byte strings inside bytes fields
// (tokens int32, logprobs float32, offsets int64, dense tensors in their
// dtype). The helpers here pack and unpack them and turn the results into the
// values the SDK 0.25.0 decoder produces. Decoders never panic: malformed
// input (odd byte lengths, offsets out of range, impossible shapes) is an
// error.
package wire
