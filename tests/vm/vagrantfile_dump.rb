# Loads a Vagrantfile with a recording stand-in for Vagrant's config DSL and prints what it set as
# JSON (tests/vm/test_vagrantfile.py). Real validation is `vagrant validate`; this shows the values.
require "json"

class Recorder
  attr_reader :data
  def initialize; @data = {}; end
  def network(type, **opts) (@data["networks"] ||= []) << opts.merge("type" => type.to_s); end
  def synced_folder(src, dst, **opts) (@data["synced_folders"] ||= []) << opts.merge("src" => src, "dst" => dst); end
  def provision(name, **opts) (@data["provisioners"] ||= []) << opts.merge("name" => name.to_s); end
  def provider(name)
    rec = (@data["providers"] ||= {})[name.to_s] ||= Recorder.new
    yield rec, self if block_given?
  end
  def method_missing(name, *args)
    key = name.to_s
    if key.end_with?("=") then @data[key.chomp("=")] = args.first
    else @data[key] ||= Recorder.new
    end
  end
  def respond_to_missing?(*) = true
  def to_json(*a) = @data.to_json(*a)
end

module Vagrant
  @root = Recorder.new
  def self.configure(_version) = yield(@root)
  def self.root = @root
end

vagrantfile = ARGV.fetch(0)
Dir.chdir(File.dirname(vagrantfile)) { load vagrantfile }
puts JSON.generate(Vagrant.root)
