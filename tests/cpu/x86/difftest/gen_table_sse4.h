/* sse4: filled in below */
