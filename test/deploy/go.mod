module github.com/scanq/scanq/test/deploy

go 1.26.0

require github.com/scanq/scanq v0.0.0

require github.com/compose-spec/compose-go/v2 v2.16.2 // indirect

replace github.com/scanq/scanq => ../..
