package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Error is a set of diagnostics; its text shows each with its source line.
type Error struct {
	Diags hcl.Diagnostics
	files map[string]*hcl.File
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteString("\n")
		}
		writeDiagnostic(&b, d, e.files)
	}
	return b.String()
}

// writeDiagnostic renders one diagnostic as "file:line:col: summary: detail"
// followed by the source line and a marker under the offending range.
func writeDiagnostic(b *strings.Builder, d *hcl.Diagnostic, files map[string]*hcl.File) {
	msg := d.Summary
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	if d.Subject == nil {
		b.WriteString(msg)
		return
	}
	r := *d.Subject
	fmt.Fprintf(b, "%s:%d:%d: %s", r.Filename, r.Start.Line, r.Start.Column, msg)
	f := files[r.Filename]
	if f == nil {
		return
	}
	// Find the line by its number, and the place in it by byte offset:
	// a column counts characters, which are not bytes outside ASCII.
	src, start := f.Bytes, 0
	for n := 1; n < r.Start.Line; n++ {
		k := bytes.IndexByte(src[start:], '\n')
		if k < 0 {
			return
		}
		start += k + 1
	}
	if r.Start.Line < 1 {
		return
	}
	end := len(src)
	if k := bytes.IndexByte(src[start:], '\n'); k >= 0 {
		end = start + k
	}
	line := string(bytes.TrimRight(src[start:end], "\r"))
	off := r.Start.Byte - start
	if off < 0 || off > end-start {
		// Not a range into this source: trust the column, as characters.
		off = runeOffset(line, r.Start.Column-1)
	}
	off = min(off, len(line))
	for off > 0 && off < len(line) && !utf8.RuneStart(line[off]) {
		off--
	}
	width := 1
	if r.End.Line == r.Start.Line && r.End.Byte > r.Start.Byte && r.End.Byte-start <= len(line) && off == r.Start.Byte-start {
		width = max(utf8.RuneCountInString(line[off:r.End.Byte-start]), 1)
	} else if r.End.Line == r.Start.Line && r.End.Column > r.Start.Column {
		width = r.End.Column - r.Start.Column
	}
	col := utf8.RuneCountInString(line[:off]) // characters before the place
	// A hostile file may hold one huge line: show a window around the place,
	// cut between characters.
	const window = 60
	if col > window && utf8.RuneCountInString(line) > 3*window {
		line = "…" + line[runeOffset(line[:off], col-window/2):]
		col = window/2 + 1
	}
	if k := runeOffset(line, 3*window); k < len(line) {
		line = line[:k] + "…"
	}
	width = min(width, 3*window)
	fmt.Fprintf(b, "\n%5d | %s\n      | %s%s", r.Start.Line, line,
		strings.Repeat(" ", col), strings.Repeat("^", width))
}

// runeOffset is the byte offset of character n (from 0) of s, or len(s) if
// s holds fewer.
func runeOffset(s string, n int) int {
	for i := range s {
		if n <= 0 {
			return i
		}
		n--
	}
	return len(s)
}

// Errorf reports a problem at a source range of this experiment as a located error.
func (e *Experiment) Errorf(rng hcl.Range, summary, detailFormat string, args ...any) error {
	return &Error{hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detailFormat, args...),
		Subject:  rng.Ptr(),
	}}, e.files}
}

// AsError wraps diagnostics found after parsing (for instance while checking
// names against a dataset catalog) so they print with source lines.
func (e *Experiment) AsError(diags hcl.Diagnostics) error {
	if !diags.HasErrors() {
		return nil
	}
	return &Error{diags, e.files}
}

// IsConfigError reports whether err is a located configuration error.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

func blockRange(body hcl.Body) hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		return sb.SrcRange
	}
	return body.MissingItemRange()
}

func attrRange(body hcl.Body, name string, fallback hcl.Range) hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[name]; ok {
			return a.Expr.Range()
		}
		if b := sb.Blocks; len(b) > 0 {
			for _, blk := range b {
				if blk.Type == name {
					return blk.DefRange()
				}
			}
		}
	}
	return fallback
}

func attrError(body hcl.Body, name, summary, detail string) *hcl.Diagnostic {
	rng := attrRange(body, name, blockRange(body))
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

func missing(rng hcl.Range, attr, detail string) hcl.Diagnostics {
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Missing required argument %q", attr), Detail: detail, Subject: rng.Ptr()}}
}

func unsafeName(kind, name string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid " + kind + " name",
		Detail:  fmt.Sprintf("%q cannot name files under artifacts/: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit, and no \"..\".", name),
		Subject: rng.Ptr()}
}
