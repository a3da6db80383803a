package status

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
)

//go:embed templates/page.html.tmpl
var templates embed.FS

// page is the page's template. html/template escapes every value for the
// place it lands in (text, attribute, SVG): names, DNs and subjects come
// from the directory, and anyone who can write an attribute there chooses
// them.
var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"stamp":    stamp,
	"day":      day,
	"duration": duration,
	"short":    shortFP,
	"f1":       func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"half":     func(a int) int { return a / 2 },
	"plural": func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	},
}).ParseFS(templates, "templates/page.html.tmpl"))

// render writes p as HTML. It renders into a buffer first, so that a
// template error does not leave half a page.
func render(w io.Writer, p *Page) error {
	var b bytes.Buffer
	if err := page.Execute(&b, p); err != nil {
		return fmt.Errorf("status: rendering the page: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}
