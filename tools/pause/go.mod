module scalestage.dev/tools/pause

go 1.22
