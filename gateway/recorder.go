package gateway

import (
	"net/http"
	"net/url"

	"github.com/valyala/fasthttp"
)

// recorder is an http.ResponseWriter over a fasthttp response, for the
// rare answers httpapi writes itself (a 503 while unready, a 500 after a
// panic): the headers are copied when the status is written, the body
// straight through.
type recorder struct {
	header http.Header
	ctx    *fasthttp.RequestCtx
	wrote  bool
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.wrote {
		return
	}
	w.wrote = true
	for k, vs := range w.header {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
	w.ctx.SetStatusCode(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ctx.Write(b)
}

func mustPath(p string) *url.URL { return &url.URL{Path: p} }
