module scalestage.dev/tools/nodenet

go 1.22
