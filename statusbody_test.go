package main

import (
	"encoding/json"
	"testing"
	"time"
)

// TestStatusBody pins the bytes of the status body, which a status poll answers and every webhook
// sends: receivers verify signatures over these bytes and parse these fields, so a change here is a
// change of the API.
func TestStatusBody(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 5e6, time.UTC)
	job := func(st JobStatus, token, msg string) Job {
		return Job{ID: "c0123456789abcdefghijklmn", KeyID: "k", Status: st, OutputToken: token, ErrorMessage: msg,
			CreatedAt: at, UpdatedAt: at.Add(90 * time.Second), Options: defaultOptions}
	}
	const (
		times = `"createdAt":"2026-03-01T12:00:00.005Z","updatedAt":"2026-03-01T12:01:30.005Z",`
		opts  = `"options":{"size":"original","background":"blur","waveform":"none","waveformColor":"#FFFFFF","captions":false},"warnings":[],`
		noOut = `"outputs":[]}`
		none  = `"outputVideo":null,"outputShareLink":null,"outputThumbnail":null,`
	)
	sized := job(StatusCompleted, "0123456789abcdef0123456789abcdef", "")
	sized.Options.Size, sized.Options.Sizes = "square", []string{"square", "x"}
	eta := 17
	live := func(id string) (int, *int) {
		if id != "c0123456789abcdefghijklmn" {
			t.Errorf("progress asked of %q", id)
		}
		return 42, &eta
	}
	cases := []struct {
		name string
		j    Job
		live liveProgress
		want string
	}{
		{"completed", job(StatusCompleted, "0123456789abcdef0123456789abcdef", ""), live,
			`{"jobId":"c0123456789abcdefghijklmn","status":"COMPLETED","progress":100,"etaSeconds":null,` +
				`"outputVideo":"https://v.example/v/0123456789abcdef0123456789abcdef.mp4",` +
				`"outputShareLink":"https://v.example/s/0123456789abcdef0123456789abcdef",` +
				`"outputThumbnail":"https://v.example/v/0123456789abcdef0123456789abcdef.jpg","errorMessage":null,` + times + opts +
				`"outputs":[{"size":"original","video":"https://v.example/v/0123456789abcdef0123456789abcdef.mp4",` +
				`"thumbnail":"https://v.example/v/0123456789abcdef0123456789abcdef.jpg"}]}`},
		{"completed in two sizes", sized, nil,
			`{"jobId":"c0123456789abcdefghijklmn","status":"COMPLETED","progress":100,"etaSeconds":null,` +
				`"outputVideo":"https://v.example/v/0123456789abcdef0123456789abcdef.mp4",` +
				`"outputShareLink":"https://v.example/s/0123456789abcdef0123456789abcdef",` +
				`"outputThumbnail":"https://v.example/v/0123456789abcdef0123456789abcdef.jpg","errorMessage":null,` + times +
				`"options":{"size":"square","sizes":["square","x"],"background":"blur","waveform":"none","waveformColor":"#FFFFFF","captions":false},"warnings":[],` +
				`"outputs":[{"size":"square","video":"https://v.example/v/0123456789abcdef0123456789abcdef.mp4",` +
				`"thumbnail":"https://v.example/v/0123456789abcdef0123456789abcdef.jpg"},` +
				`{"size":"x","video":"https://v.example/v/0123456789abcdef0123456789abcdef.x.mp4",` +
				`"thumbnail":"https://v.example/v/0123456789abcdef0123456789abcdef.x.jpg"}]}`},
		{"failed, the message escaped", job(StatusFailed, "", `image: a "PNG" <of> & nothing`), nil,
			`{"jobId":"c0123456789abcdefghijklmn","status":"FAILED","progress":0,"etaSeconds":null,` + none +
				`"errorMessage":"image: a \"PNG\" \u003cof\u003e \u0026 nothing",` + times + opts + noOut},
		{"pending has no progress", job(StatusPending, "", ""), live,
			`{"jobId":"c0123456789abcdefghijklmn","status":"PENDING","progress":0,"etaSeconds":null,` + none + `"errorMessage":null,` + times + opts + noOut},
		{"processing, live", job(StatusProcessing, "", ""), live,
			`{"jobId":"c0123456789abcdefghijklmn","status":"PROCESSING","progress":42,"etaSeconds":17,` + none + `"errorMessage":null,` + times + opts + noOut},
		{"processing, nothing live", job(StatusProcessing, "", ""), nil,
			`{"jobId":"c0123456789abcdefghijklmn","status":"PROCESSING","progress":0,"etaSeconds":null,` + none + `"errorMessage":null,` + times + opts + noOut},
	}
	long := job(StatusPending, "", "")
	long.Options.Size, long.AudioDuration = "x", 140.04
	cases = append(cases, struct {
		name string
		j    Job
		live liveProgress
		want string
	}{"longer than its platform takes", long, nil,
		`{"jobId":"c0123456789abcdefghijklmn","status":"PENDING","progress":0,"etaSeconds":null,` + none + `"errorMessage":null,` + times +
			`"options":{"size":"x","background":"blur","waveform":"none","waveformColor":"#FFFFFF","captions":false},` +
			`"warnings":["The video lasts 0:02:20.1: X takes at most 2 minutes 20 seconds (140 s) from accounts without Premium"],"outputs":[]}`})
	for _, c := range cases {
		b, err := json.Marshal(statusOf(c.j, "https://v.example", c.live))
		if err != nil || string(b) != c.want {
			t.Errorf("%s: %v\n got %s\nwant %s", c.name, err, b, c.want)
		}
	}
}
