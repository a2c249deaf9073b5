return function(loop) return {} end
