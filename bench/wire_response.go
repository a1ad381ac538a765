package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// This file is the wire client's response reader: just enough HTTP/1.1
// (RFC 9112) to find the status and the end of the body, so the connection
// can carry the next request. Headers other than those that frame the body
// or end the connection are skipped, not stored.

// errMalformed is an answer that is not HTTP/1.x as this reader knows it.
var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one answer from br. keepAlive says the connection may
// carry another request; started says some of the answer had arrived when
// an error occurred (so the request must not be replayed).
func readResponse(br *bufio.Reader, keepBody bool) (r response, keepAlive, started bool, err error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return r, false, len(line) > 0, err
		}
		status, http11, ok := parseStatusLine(line)
		if !ok {
			return r, false, true, fmt.Errorf("%w: status line %q", errMalformed, trimCRLF(line))
		}
		f, err := readFraming(br, http11)
		if err != nil {
			return r, false, true, err
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // an interim answer; the real one follows
		}
		r.Status = status
		switch {
		case status == 204 || status == 304 || status < 200:
		case f.chunked:
			r.Body, err = readChunked(br, keepBody)
		case f.length >= 0:
			r.Body, err = readBody(br, f.length, keepBody)
		default: // delimited by the end of the connection
			r.Body, err = readToEOF(br, keepBody)
			f.keepAlive = false
		}
		return r, f.keepAlive && err == nil, true, err
	}
}

// parseStatusLine parses "HTTP/1.x SSS reason".
func parseStatusLine(line []byte) (status int, http11, ok bool) {
	line = trimCRLF(line)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return 0, false, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		status = status*10 + int(c-'0')
	}
	return status, line[7] != '0', true
}

// framing is what the headers say about the body and the connection.
type framing struct {
	length    int64 // -1: not given
	chunked   bool
	keepAlive bool
}

// readFraming reads the header section up to its empty line, keeping only
// Content-Length, Transfer-Encoding and Connection.
func readFraming(br *bufio.Reader, http11 bool) (framing, error) {
	f := framing{length: -1, keepAlive: http11}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return f, fmt.Errorf("%w: header line longer than %d bytes", errMalformed, br.Size())
			}
			return f, err
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			return f, nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return f, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return f, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
			f.length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			f.chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			switch {
			case bytes.EqualFold(value, []byte("close")):
				f.keepAlive = false
			case bytes.EqualFold(value, []byte("keep-alive")):
				f.keepAlive = true
			}
		}
	}
}

// readBody reads an n-byte body, keeping at most maxBody of it if keep.
func readBody(br *bufio.Reader, n int64, keep bool) ([]byte, error) {
	var body []byte
	if keep {
		body = make([]byte, min(n, maxBody))
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, unexpectedEOF(err)
		}
		n -= int64(len(body))
	}
	if _, err := br.Discard(int(n)); err != nil {
		return body, unexpectedEOF(err)
	}
	return body, nil
}

// readChunked reads a chunked body and its trailer section.
func readChunked(br *bufio.Reader, keep bool) ([]byte, error) {
	var body []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return body, unexpectedEOF(err)
		}
		sizeHex, _, _ := bytes.Cut(trimCRLF(line), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeHex)), 16, 64)
		if err != nil || size < 0 {
			return body, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			_, err := readFraming(br, true) // the trailer section
			return body, unexpectedEOF(err)
		}
		chunk, err := readBody(br, size, keep && int64(len(body)) < maxBody)
		if err != nil {
			return body, err
		}
		body = append(body, chunk[:min(len(chunk), maxBody-len(body))]...)
		if crlf, err := br.ReadSlice('\n'); err != nil || len(trimCRLF(crlf)) != 0 {
			return body, fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
}

// readToEOF reads a body that the server ends by closing the connection.
func readToEOF(br *bufio.Reader, keep bool) ([]byte, error) {
	if !keep {
		_, err := io.Copy(io.Discard, br)
		return nil, err
	}
	var b bytes.Buffer
	_, err := io.Copy(&b, io.LimitReader(br, maxBody))
	if err == nil {
		_, err = io.Copy(io.Discard, br)
	}
	return b.Bytes(), err
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// unexpectedEOF turns an EOF in the middle of an answer into
// io.ErrUnexpectedEOF, as net/http reports it.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
