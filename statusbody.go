package main

import "time"

// apiTime formats t as the API does: UTC, milliseconds, Z.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// statusBody is the body of GET /api/status/:jobId and of every webhook.
type statusBody struct {
	JobID      string    `json:"jobId"`
	Status     JobStatus `json:"status"`
	Progress   int       `json:"progress"`
	EtaSeconds *int      `json:"etaSeconds"`
	jobLinks
	ErrorMessage *string  `json:"errorMessage"`
	CreatedAt    string   `json:"createdAt"`
	UpdatedAt    string   `json:"updatedAt"`
	Options      Options  `json:"options"`  // what the submission asked for, defaults filled in
	Warnings     []string `json:"warnings"` // jobWarnings: never null, [] when there are none
	// Outputs are the job's videos, one per size in the order asked; never null, [] until it is
	// COMPLETED. The first is jobLinks' OutputVideo and OutputThumbnail.
	Outputs []sizeOutput `json:"outputs"`
}

// sizeOutput is one size's video and poster, by URL.
type sizeOutput struct {
	Size      string `json:"size"`
	Video     string `json:"video"`
	Thumbnail string `json:"thumbnail"`
}

// jobLinks are a finished job's public URLs of its first size, as the status body, the webhook
// and the job list give them: the video, its share page and its poster (a JPEG of the video's
// picture, the video's size); all nil until it is COMPLETED.
type jobLinks struct {
	OutputVideo     *string `json:"outputVideo"`
	OutputShareLink *string `json:"outputShareLink"`
	OutputThumbnail *string `json:"outputThumbnail"`
}

// jobOutputs are a job's links and every size's video and poster (never nil).
type jobOutputs struct {
	jobLinks
	sizes []sizeOutput
}

// outputURLs are a COMPLETED job's outputs under the public base URL; all nil (and no sizes)
// otherwise.
func outputURLs(j Job, base string) jobOutputs {
	if j.Status != StatusCompleted || j.OutputToken == "" {
		return jobOutputs{sizes: []sizeOutput{}}
	}
	sizes := j.Options.sizes()
	out := jobOutputs{sizes: make([]sizeOutput, len(sizes))}
	for i, name := range outputNames(j.OutputToken, j.Options.Sizes) {
		v := base + "/v/" + name
		out.sizes[i] = sizeOutput{Size: sizes[i], Video: v + ".mp4", Thumbnail: v + ".jpg"}
	}
	out.jobLinks = jobLinks{&out.sizes[0].Video, strPtr(base + "/s/" + j.OutputToken), &out.sizes[0].Thumbnail}
	return out
}

// liveProgress reports a running job's progress in percent and its expected seconds to go (nil when
// not known yet); the renderer's Progress is one.
type liveProgress func(jobID string) (percent int, eta *int)

// statusOf is the status body of the stored job j under the public base URL: what a status poll
// answers and what a webhook sends, the one place either is built, so a receiver reads the same
// fields a poll does. live, when not nil, gives a PROCESSING job's progress; a webhook, sent once
// the job has ended, has none to give.
func statusOf(j Job, base string, live liveProgress) statusBody {
	b := statusBody{JobID: j.ID, Status: j.Status, ErrorMessage: strPtr(j.ErrorMessage),
		CreatedAt: apiTime(j.CreatedAt), UpdatedAt: apiTime(j.UpdatedAt), Options: j.Options, Warnings: jobWarnings(j)}
	out := outputURLs(j, base)
	b.jobLinks, b.Outputs = out.jobLinks, out.sizes
	switch {
	case j.Status == StatusCompleted:
		b.Progress = 100
	case j.Status == StatusProcessing:
		if live != nil {
			b.Progress, b.EtaSeconds = live(j.ID)
		}
		// What the job's renders, on this node or another (or one whose lease lapsed), last
		// stored: a poll never sees the bar go back, whichever node it asks.
		b.Progress = max(b.Progress, j.Progress)
	}
	return b
}
