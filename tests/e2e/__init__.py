"""End-to-end tests, one folder per thing driven: a real `rerank-kit serve` over HTTP (server/), the client
against it (client/), the commands as a user runs them (cli/), the packaged Dify plugins over stdio and Dify's
own providers' requests (dify/), RAGFlow's class, installer and built-in factories (ragflow/), the benchmark
harness (benchmarks/)."""
