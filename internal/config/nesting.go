package config

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// checkNesting scans src for brackets and template interpolations nested
// deeper than MaxNesting, before HCL's recursive-descent parser sees them:
// deep enough nesting overflows the goroutine stack, which is a fatal error,
// not a panic. The scan skips comments and the literal text of strings and
// heredocs, so only what the parser recurses on is counted; it never
// under-counts, so it may only refuse what would be at least that deep.
func checkNesting(filename string, src []byte) *hcl.Diagnostic {
	const (
		code = iota
		quoted
		heredoc
	)
	type frame struct {
		back  int    // mode to return to when this frame closes
		delim []byte // heredoc delimiter to return to
	}
	var (
		stack  []frame
		mode   = code
		delim  []byte // of the heredoc being read
		line   = 1
		col    = 1
		bol    = true // at the beginning of a line
		offset int
	)
	push := func(back int) *hcl.Diagnostic {
		stack = append(stack, frame{back, delim})
		if len(stack) <= MaxNesting {
			return nil
		}
		pos := hcl.Pos{Line: line, Column: col, Byte: offset}
		return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too deeply nested",
			Detail:  fmt.Sprintf("Brackets, braces and ${ } are nested more than %d levels deep here; no experiment needs that many, so the file is refused before parsing.", MaxNesting),
			Subject: &hcl.Range{Filename: filename, Start: pos, End: hcl.Pos{Line: line, Column: col + 1, Byte: offset + 1}}}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		offset = i
		next := byte(0)
		if i+1 < len(src) {
			next = src[i+1]
		}
		startOfLine := bol
		bol = false
		switch mode {
		case code:
			switch {
			case c == '#' || c == '/' && next == '/':
				for i+1 < len(src) && src[i+1] != '\n' {
					i++
				}
			case c == '/' && next == '*':
				end := bytes.Index(src[i+2:], []byte("*/"))
				if end < 0 {
					return nil // unterminated: the parser reports it
				}
				skip := src[i : i+2+end+2]
				line += bytes.Count(skip, []byte("\n"))
				if nl := bytes.LastIndexByte(skip, '\n'); nl >= 0 {
					col = 1 + runes(skip[nl+1:])
				} else {
					col += runes(skip)
				}
				i += len(skip) - 1
				continue
			case c == '(' || c == '[' || c == '{':
				if d := push(code); d != nil {
					return d
				}
			case c == ')' || c == ']' || c == '}':
				if n := len(stack); n > 0 {
					mode, delim = stack[n-1].back, stack[n-1].delim
					stack = stack[:n-1]
				}
			case c == '"':
				mode = quoted
			case c == '<' && next == '<':
				j := i + 2
				if j < len(src) && src[j] == '-' {
					j++
				}
				k := j
				for k < len(src) && (isIdent(src[k])) {
					k++
				}
				if k > j && k < len(src) && (src[k] == '\n' || src[k] == '\r') {
					mode, delim = heredoc, src[j:k]
					col += k - i
					i = k - 1
					continue
				}
			}
		case quoted, heredoc:
			if mode == heredoc && startOfLine {
				rest := src[i:]
				if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
					rest = rest[:nl]
				}
				if bytes.Equal(bytes.TrimSpace(rest), delim) {
					mode = code
					break
				}
			}
			switch {
			case mode == quoted && c == '\\':
				i++
				col++
			case mode == quoted && (c == '"' || c == '\n'):
				mode = code
			case (c == '$' && next == '$' || c == '%' && next == '%') && i+2 < len(src) && src[i+2] == '{':
				i += 2 // an escaped, literal ${ or %{
				col += 2
			case (c == '$' || c == '%') && next == '{':
				if d := push(mode); d != nil {
					return d
				}
				mode = code
				i++
				col++
			}
		}
		if c == '\n' {
			line++
			col = 1
			bol = true
		} else if c&0xC0 != 0x80 {
			col++
		}
	}
	return nil
}

func isIdent(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func runes(b []byte) int {
	n := 0
	for _, c := range b {
		if c&0xC0 != 0x80 {
			n++
		}
	}
	return n
}
